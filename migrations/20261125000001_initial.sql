-- Initial schema (SPEC §8). Kept to the subset MariaDB 10.11 and MySQL 8.4 both accept:
-- no RETURNING, no INSERT ... AS alias, binary collations on every id column.
-- Money is DECIMAL(20,2); instants are DATETIME(6) in UTC.

CREATE TABLE merchants (
    merchant_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (merchant_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- API keys. The secret is needed to verify HMACs, so it is stored encrypted under a master
-- key (AES-256-GCM, key id kept for rotation), never in plaintext.
CREATE TABLE api_keys (
    client_id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name               VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    role               VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret_key_id      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    secret_ciphertext  VARBINARY(256) NOT NULL,
    -- the previous secret during a rotation's grace period
    prev_secret_key_id     VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    prev_secret_ciphertext VARBINARY(256) NULL,
    prev_secret_expires_at DATETIME(6) NULL,
    rate_per_second    INT UNSIGNED NULL,
    rate_burst         INT UNSIGNED NULL,
    created_at         DATETIME(6) NOT NULL,
    updated_at         DATETIME(6) NOT NULL,
    revoked_at         DATETIME(6) NULL,
    PRIMARY KEY (client_id),
    KEY api_keys_merchant (merchant_id),
    KEY api_keys_updated (updated_at),
    CONSTRAINT api_keys_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (merchant_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE users (
    user_id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_status      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- AES-256-GCM(nonce || ciphertext || tag) of the NIK, under the master key nik_key_id
    nik_ciphertext   VARBINARY(128) NOT NULL,
    nik_key_id       VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- HMAC-SHA256(blind index key, NIK): uniqueness and lookups without the plaintext
    nik_blind_index  BINARY(32) NOT NULL,
    nik_masked       CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    full_name        VARCHAR(100) NOT NULL,
    legal_name       VARCHAR(100) NOT NULL,
    tempat_lahir     VARCHAR(100) NOT NULL,
    tanggal_lahir    DATE NOT NULL,
    gaji             DECIMAL(20,2) NOT NULL,
    foto_ktp         VARCHAR(2048) NOT NULL,
    foto_selfie      VARCHAR(2048) NOT NULL,
    created_by       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    api_call_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at       DATETIME(6) NOT NULL,
    updated_at       DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id),
    UNIQUE KEY users_nik_blind_index (nik_blind_index)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The seed's limit columns are the granted limits; available_* are what is left now.
-- Invariant (SPEC §5): available = granted - approved jumlah_cicilan + payments, 0 <= available <= granted.
CREATE TABLE user_limit_balances (
    user_id                VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    limit_one_month        DECIMAL(20,2) NOT NULL,
    limit_two_month        DECIMAL(20,2) NOT NULL,
    limit_three_month      DECIMAL(20,2) NOT NULL,
    limit_sixth            DECIMAL(20,2) NOT NULL,
    available_one_month    DECIMAL(20,2) NOT NULL,
    available_two_month    DECIMAL(20,2) NOT NULL,
    available_three_month  DECIMAL(20,2) NOT NULL,
    available_sixth        DECIMAL(20,2) NOT NULL,
    updated_at             DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id),
    CONSTRAINT user_limit_balances_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id),
    CONSTRAINT available_one_month_range CHECK (available_one_month >= 0 AND available_one_month <= limit_one_month),
    CONSTRAINT available_two_month_range CHECK (available_two_month >= 0 AND available_two_month <= limit_two_month),
    CONSTRAINT available_three_month_range CHECK (available_three_month >= 0 AND available_three_month <= limit_three_month),
    CONSTRAINT available_sixth_range CHECK (available_sixth >= 0 AND available_sixth <= limit_sixth)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Contracts (the seed's Transaction).
CREATE TABLE transactions (
    nomor_kontrak    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    external_id      VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    api_call_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tanggal_kontrak  DATETIME(6) NOT NULL,
    tanggal_update   DATETIME(6) NOT NULL,
    otr              DECIMAL(20,2) NOT NULL,
    admin_fee        DECIMAL(20,2) NOT NULL,
    harga_aset       DECIMAL(20,2) NOT NULL,
    pokok            DECIMAL(20,2) NOT NULL,
    bunga_persen     DECIMAL(7,4) NOT NULL,
    jumlah_bunga     DECIMAL(20,2) NOT NULL,
    jumlah_cicilan   DECIMAL(20,2) NOT NULL,
    cicilan_bulanan  DECIMAL(20,2) NOT NULL,
    tenor            TINYINT UNSIGNED NOT NULL,
    nama_aset        VARCHAR(200) NOT NULL,
    terbayar         DECIMAL(20,2) NOT NULL DEFAULT 0,
    PRIMARY KEY (nomor_kontrak),
    UNIQUE KEY transactions_api_call (api_call_id),
    UNIQUE KEY transactions_external (merchant_id, external_id),
    KEY transactions_user (user_id, tenor),
    CONSTRAINT transactions_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Installments.
CREATE TABLE monthly_billings (
    billing_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    nomor_kontrak    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    cicilan_ke       TINYINT UNSIGNED NOT NULL,
    nama_aset        VARCHAR(200) NOT NULL,
    tenor            TINYINT UNSIGNED NOT NULL,
    harga_cicilan    DECIMAL(20,2) NOT NULL,
    terbayar         DECIMAL(20,2) NOT NULL DEFAULT 0,
    status           VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tanggal_tagihan  DATE NOT NULL,
    PRIMARY KEY (billing_id),
    UNIQUE KEY monthly_billings_contract (nomor_kontrak, cicilan_ke),
    KEY monthly_billings_user (user_id, tanggal_tagihan, billing_id),
    CONSTRAINT monthly_billings_contract_fk FOREIGN KEY (nomor_kontrak) REFERENCES transactions (nomor_kontrak),
    CONSTRAINT monthly_billings_paid_range CHECK (terbayar >= 0 AND terbayar <= harga_cicilan)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Payments (the seed's Bill).
CREATE TABLE bills (
    kode_bayar            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    nomor_kontrak         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    external_id           VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    api_call_id           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    terbayarkan           DECIMAL(20,2) NOT NULL,
    total_tagihan         DECIMAL(20,2) NOT NULL,
    sisa_tagihan_bulanan  DECIMAL(20,2) NOT NULL,
    tanggal_bayar         DATETIME(6) NOT NULL,
    sisa_limit            DECIMAL(20,2) NOT NULL,
    status_bayar          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    alokasi               TEXT NOT NULL,
    PRIMARY KEY (kode_bayar),
    UNIQUE KEY bills_api_call (api_call_id),
    UNIQUE KEY bills_external (merchant_id, external_id),
    KEY bills_user (user_id, tanggal_bayar, kode_bayar),
    KEY bills_contract (nomor_kontrak),
    CONSTRAINT bills_contract_fk FOREIGN KEY (nomor_kontrak) REFERENCES transactions (nomor_kontrak)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The MySQL half of every external id claim: one row per (merchant, endpoint, external id),
-- forever. Redis holds the fast path; this unique key is what makes it exactly once.
CREATE TABLE idempotency_keys (
    merchant_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    endpoint     VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    external_id  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    api_call_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    body_sha256  BINARY(32) NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (merchant_id, endpoint, external_id),
    UNIQUE KEY idempotency_keys_api_call (api_call_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The outcome of every asynchronous call: what GET /status falls back to when Redis has
-- forgotten, and the audit trail of every decision the workers made.
CREATE TABLE async_outcomes (
    api_call_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    client_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    external_id   VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    call_type     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    status        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    reason        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    result        MEDIUMTEXT NULL,
    created_at    DATETIME(6) NOT NULL,
    completed_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (api_call_id),
    KEY async_outcomes_merchant (merchant_id, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per audited request (every endpoint but health, readiness, metrics and OpenAPI).
-- Bodies are stored with NIK and photo URLs masked.
CREATE TABLE api_call_logs (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    api_call_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    method          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    path            VARCHAR(2048) NOT NULL,
    merchant_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    client_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    external_id     VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    http_status     SMALLINT UNSIGNED NOT NULL,
    message_action  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_body    MEDIUMTEXT NULL,
    response_body   MEDIUMTEXT NULL,
    client_ip       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    started_at      DATETIME(6) NOT NULL,
    duration_us     BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY api_call_logs_api_call (api_call_id),
    KEY api_call_logs_started (started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
