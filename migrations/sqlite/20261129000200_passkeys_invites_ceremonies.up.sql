-- Passkeys (WebAuthn credential records), invites and pending WebAuthn
-- ceremonies. Times are Unix milliseconds (UTC).

-- One row per passkey. Every field of go-webauthn's credential record is
-- kept so a login can be verified and the record re-checked later.
CREATE TABLE credentials (
    id                 TEXT    PRIMARY KEY,            -- UUID (the API's passkey id)
    credential_id      BLOB    NOT NULL UNIQUE,        -- WebAuthn credential ID
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT    NOT NULL,
    public_key         BLOB    NOT NULL,               -- COSE public key
    attestation_type   TEXT    NOT NULL,
    attestation_format TEXT    NOT NULL,
    transports         TEXT    NOT NULL DEFAULT '[]',  -- JSON array of transport names
    attachment         TEXT    NOT NULL DEFAULT '',    -- platform, cross-platform or empty
    flags              INTEGER NOT NULL,               -- authenticator data flags (raw octet)
    aaguid             BLOB,
    sign_count         INTEGER NOT NULL DEFAULT 0,
    clone_warning      INTEGER NOT NULL DEFAULT 0 CHECK (clone_warning IN (0, 1)),
    clone_detected_at  INTEGER,                        -- when a non-increasing counter was seen
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER
);

--bun:split

CREATE INDEX credentials_user_id ON credentials (user_id);

--bun:split

-- Invite codes: only the SHA-256 of the normalised code is stored.
CREATE TABLE invites (
    id          TEXT    PRIMARY KEY,                   -- UUID
    code_hash   BLOB    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_by  TEXT    REFERENCES users (id) ON DELETE SET NULL, -- NULL: the CLI or first start
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    uses_left   INTEGER NOT NULL CHECK (uses_left >= 0)
);

--bun:split

CREATE INDEX invites_role_expires ON invites (role, expires_at);

--bun:split

-- Pending WebAuthn ceremonies: go-webauthn's SessionData (JSON) plus what
-- the finish step needs, consumed once with DELETE ... RETURNING.
CREATE TABLE ceremonies (
    id            TEXT    PRIMARY KEY,                 -- random, unguessable
    kind          TEXT    NOT NULL CHECK (kind IN ('register', 'login', 'add_passkey')),
    user_id       TEXT    REFERENCES users (id) ON DELETE CASCADE, -- add_passkey and username login
    session_data  BLOB    NOT NULL,                    -- webauthn.SessionData as JSON
    payload       BLOB    NOT NULL DEFAULT '{}',       -- kind-specific JSON (registration details)
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

--bun:split

CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
