-- PostgreSQL twin of sqlite/20261129000200_passkeys_invites_ceremonies.up.sql.
CREATE TABLE credentials (
    id                 TEXT    PRIMARY KEY,
    credential_id      BYTEA   NOT NULL UNIQUE,
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT    NOT NULL,
    public_key         BYTEA   NOT NULL,
    attestation_type   TEXT    NOT NULL,
    attestation_format TEXT    NOT NULL,
    transports         TEXT    NOT NULL DEFAULT '[]',
    attachment         TEXT    NOT NULL DEFAULT '',
    flags              BIGINT  NOT NULL,
    aaguid             BYTEA,
    sign_count         BIGINT  NOT NULL DEFAULT 0,
    clone_warning      BIGINT  NOT NULL DEFAULT 0 CHECK (clone_warning IN (0, 1)),
    clone_detected_at  BIGINT,
    created_at         BIGINT  NOT NULL,
    last_used_at       BIGINT
);

--bun:split

CREATE INDEX credentials_user_id ON credentials (user_id);

--bun:split

CREATE TABLE invites (
    id          TEXT    PRIMARY KEY,
    code_hash   BYTEA   NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  TEXT    REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    uses_left   BIGINT  NOT NULL CHECK (uses_left >= 0)
);

--bun:split

CREATE INDEX invites_role_expires ON invites (role, expires_at);

--bun:split

CREATE TABLE ceremonies (
    id            TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('register', 'login', 'add_passkey')),
    user_id       TEXT    REFERENCES users (id) ON DELETE CASCADE,
    session_data  BYTEA   NOT NULL,
    payload       BYTEA   NOT NULL DEFAULT '{}',
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);

--bun:split

CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
