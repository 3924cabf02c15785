-- Every change of a user's granted limit (SPEC §13): one row per tenor whose granted limit
-- an admin changed, with the call and the key that changed it. Creating a user is not a
-- change; a value equal to the current one is not recorded.
CREATE TABLE limit_changes (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    tenor        TINYINT UNSIGNED NOT NULL,
    old_granted  DECIMAL(20,2) NOT NULL,
    new_granted  DECIMAL(20,2) NOT NULL,
    api_call_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    client_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    changed_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- The listing's keyset: a user's changes in the order they were made.
    KEY limit_changes_user (user_id, id),
    CONSTRAINT limit_changes_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
