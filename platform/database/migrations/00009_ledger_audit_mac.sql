-- +goose Up

-- Each audit entry's MAC under a key the database does not hold (derived
-- from the master keyring; see platform/audit): whoever can write the
-- table can still not rewrite a chain with recomputed hashes unnoticed.
ALTER TABLE audit_log
    ADD COLUMN mac_key_id text,
    ADD COLUMN mac        bytea,
    ADD CHECK ((mac IS NULL) = (mac_key_id IS NULL));
COMMENT ON COLUMN audit_log.mac IS
    'HMAC-SHA256 of the row''s hash under the audit key mac_key_id (derived from the master key of that id); NULL for rows written without a key.';

-- +goose Down
ALTER TABLE audit_log DROP COLUMN mac, DROP COLUMN mac_key_id;
