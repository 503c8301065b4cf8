-- +goose Up

-- The people who sign in to the console (services/console). A local
-- account has an argon2id password hash (PHC string); an account that
-- signs in through the company's OpenID provider has none and is matched by
-- its verified e-mail address, which is its name. The password itself is
-- never stored.
CREATE TABLE console_users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@+-]{1,254}$'),
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text        CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE console_users IS
    'Console accounts: name, role (viewer, operator, admin) and, for local accounts, an argon2id hash of the password. Created with mlcctl users add; every change is audited.';
CREATE TRIGGER console_users_touch BEFORE UPDATE ON console_users
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Sessions are kept by the SHA-256 of their token: a copy of this table
-- does not let anyone sign in.
CREATE TABLE console_sessions (
    token_hash bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    bigint      NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE console_sessions IS
    'Signed-in console sessions, by SHA-256 of the cookie token; expired rows are deleted by the console.';
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);

-- +goose Down
DROP TABLE console_sessions;
DROP TABLE console_users;
