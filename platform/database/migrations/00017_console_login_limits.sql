-- +goose Up

-- Failed console sign-ins, counted per user name and per client address in
-- a fixed window. They are kept here rather than in each console pod's
-- memory so that N replicas do not give an attacker N times the attempts.
-- The key is stored as its SHA-256: what people type into the name field is
-- sometimes their password.
CREATE TABLE console_login_limits (
    key_hash     bytea       PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    window_start timestamptz NOT NULL,
    attempts     integer     NOT NULL CHECK (attempts >= 0)
);
COMMENT ON TABLE console_login_limits IS
    'Console sign-in attempts (failed or in flight) per SHA-256 of "name:<user>" or "addr:<ip>" since window_start; rows of ended windows are deleted by the console.';
CREATE INDEX console_login_limits_window_idx ON console_login_limits (window_start);

-- +goose Down
DROP TABLE console_login_limits;
