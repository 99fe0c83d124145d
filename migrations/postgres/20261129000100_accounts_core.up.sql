-- PostgreSQL twin of sqlite/20261129000100_accounts_core.up.sql.
-- Core identity: users, their devices (one per app install = one MLS client)
-- and sessions. Times are Unix milliseconds (UTC) so comparisons are exact.

-- Portability: SQLite's two-argument scalar max()/min(), so that queries
-- written once run on both engines (PostgreSQL's own aggregates take one
-- argument and are unaffected).
CREATE FUNCTION max(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT GREATEST(a, b)';

--bun:split

CREATE FUNCTION min(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT LEAST(a, b)';

--bun:split

CREATE TABLE users (
    id           TEXT    PRIMARY KEY,
    username     TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    webauthn_id  BYTEA   NOT NULL UNIQUE,
    disabled_at  BIGINT,
    created_at   BIGINT  NOT NULL
);

--bun:split

CREATE TABLE devices (
    id           TEXT    PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT,
    revoked_at   BIGINT
);

--bun:split

CREATE INDEX devices_user_id ON devices (user_id);

--bun:split

CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY,
    token_hash   BYTEA   NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    revoked_at   BIGINT
);

--bun:split

CREATE INDEX sessions_device_id ON sessions (device_id);

--bun:split

CREATE INDEX sessions_user_id ON sessions (user_id);
