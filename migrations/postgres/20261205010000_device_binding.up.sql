-- PostgreSQL twin of sqlite/20261205010000_device_binding.up.sql.
-- Passkey-attested devices (issue #18, item 1; docs/verification.md,
-- "Devices approved by passkey").
--
-- devices gain the device's MLS signature key and the WebAuthn assertion
-- that bound it (binding_*: exactly the bytes the client sent; the
-- challenge was SHA-256("sovereign device binding v1" ‖ 0 ‖ nonce ‖ key ‖
-- device id)). NULL: a device signed in without binding.
ALTER TABLE devices ADD COLUMN signature_key BYTEA;

--bun:split

ALTER TABLE devices ADD COLUMN binding_credential_id BYTEA;

--bun:split

ALTER TABLE devices ADD COLUMN binding_nonce BYTEA;

--bun:split

ALTER TABLE devices ADD COLUMN binding_authenticator_data BYTEA;

--bun:split

ALTER TABLE devices ADD COLUMN binding_client_data_json BYTEA;

--bun:split

ALTER TABLE devices ADD COLUMN binding_signature BYTEA;

--bun:split

-- A passkey added to an account carries the assertion of an existing
-- passkey of the account over SHA-256("sovereign passkey approval v1" ‖ 0 ‖
-- nonce ‖ new credential id ‖ new public key). The first passkey of a
-- registration has none; a recovery's has none and recovered = 1.
ALTER TABLE credentials ADD COLUMN approval_by_credential_id BYTEA;

--bun:split

ALTER TABLE credentials ADD COLUMN approval_nonce BYTEA;

--bun:split

ALTER TABLE credentials ADD COLUMN approval_authenticator_data BYTEA;

--bun:split

ALTER TABLE credentials ADD COLUMN approval_client_data_json BYTEA;

--bun:split

ALTER TABLE credentials ADD COLUMN approval_signature BYTEA;

--bun:split

ALTER TABLE credentials ADD COLUMN recovered BIGINT NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1));

--bun:split

-- Two new ceremony kinds: bind_device (an assertion over a device binding
-- challenge by a signed-in device) and approve_passkey (an assertion over a
-- passkey approval challenge). Pending ceremonies live for a minute, so the
-- table is rebuilt empty rather than copied (as in 20261202020100).
DROP TABLE ceremonies;

--bun:split

CREATE TABLE ceremonies (
    id            TEXT    PRIMARY KEY,                 -- random, unguessable (step_up_grant: SHA-256 of the token)
    kind          TEXT    NOT NULL CHECK (kind IN ('register', 'login', 'add_passkey', 'step_up', 'step_up_grant', 'recover', 'bind_device', 'approve_passkey')),
    user_id       TEXT    REFERENCES users (id) ON DELETE CASCADE,
    session_data  BYTEA   NOT NULL,                    -- webauthn.SessionData as JSON
    payload       BYTEA   NOT NULL DEFAULT '{}',       -- kind-specific JSON
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

--bun:split

CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
