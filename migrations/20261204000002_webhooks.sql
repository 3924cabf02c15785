-- Webhooks (SPEC §11): one endpoint per merchant, an outbox of events written in the same
-- transaction as the outcome that causes them, and every delivery attempt.

-- The secret signs every delivery, so it is stored like API key secrets: encrypted under a
-- master key (AES-256-GCM, key id kept for rotation). `events` is the comma-separated list
-- of subscribed event types. The application user may not DELETE: a deleted endpoint keeps
-- its row with `deleted_at` set and its secret wiped, and registering again recreates it.
CREATE TABLE webhook_endpoints (
    merchant_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    url                VARCHAR(2048) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    events             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret_key_id      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret_ciphertext  VARBINARY(256) NOT NULL,
    created_at         DATETIME(6) NOT NULL,
    updated_at         DATETIME(6) NOT NULL,
    deleted_at         DATETIME(6) NULL,
    PRIMARY KEY (merchant_id),
    CONSTRAINT webhook_endpoints_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (merchant_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per event, time-ordered ids (`evt_` + UUIDv7). `payload` is the exact body every
-- attempt sends. `source_id` is the api call that caused it: (source_id, type) is unique, so a
-- redelivered command records nothing twice. A pending event is due at `next_attempt_at`; a
-- dispatcher that claims it moves that instant past its lease and stamps `lease_id`, so a
-- dispatcher that dies leaves it due again once the lease has run out, and a late finisher
-- whose lease was taken over cannot overwrite the newer claim's result.
CREATE TABLE webhook_events (
    event_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    type             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    source_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    payload          MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    status           VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    attempts         INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(6) NOT NULL,
    lease_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at       DATETIME(6) NOT NULL,
    PRIMARY KEY (event_id),
    UNIQUE KEY webhook_events_source (source_id, type),
    -- the dispatchers' due query: pending, by next_attempt_at
    KEY webhook_events_due (status, next_attempt_at),
    -- the merchant's listing, newest first, with or without a status
    KEY webhook_events_merchant (merchant_id, event_id),
    KEY webhook_events_merchant_status (merchant_id, status, event_id),
    CONSTRAINT webhook_events_status CHECK (status IN ('pending', 'delivered', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every attempt: when, the receiver's HTTP status (null when none came), why it failed
-- (null on a 2xx), how long it took.
CREATE TABLE webhook_attempts (
    attempt_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    at           DATETIME(6) NOT NULL,
    http_status  SMALLINT UNSIGNED NULL,
    error        VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    duration_ms  INT UNSIGNED NOT NULL,
    PRIMARY KEY (attempt_id),
    KEY webhook_attempts_event (event_id, attempt_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
