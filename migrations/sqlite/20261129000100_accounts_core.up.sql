-- Core identity: users, their devices (one per app install = one MLS client)
-- and sessions. Times are Unix milliseconds (UTC) so comparisons are exact.
CREATE TABLE users (
    id           TEXT    PRIMARY KEY,            -- UUID
    username     TEXT    NOT NULL UNIQUE,        -- case-folded
    display_name TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    webauthn_id  BLOB    NOT NULL UNIQUE,        -- WebAuthn user handle (random)
    disabled_at  INTEGER,
    created_at   INTEGER NOT NULL
);

--bun:split

CREATE TABLE devices (
    id           TEXT    PRIMARY KEY,            -- UUID
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER
);

--bun:split

CREATE INDEX devices_user_id ON devices (user_id);

--bun:split

CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY,            -- UUID
    token_hash   BLOB    NOT NULL UNIQUE,        -- SHA-256 of the 256-bit token
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER
);

--bun:split

CREATE INDEX sessions_device_id ON sessions (device_id);

--bun:split

CREATE INDEX sessions_user_id ON sessions (user_id);
