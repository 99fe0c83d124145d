-- Step-up grants and account recovery (issue 19).
--
-- ceremonies gains three kinds: step_up (a WebAuthn assertion begun for
-- one account change), step_up_grant (the single-use proof a finished
-- step-up leaves, under the SHA-256 of its token, bound to the operation,
-- its target and the session) and recover (a registration ceremony begun
-- with an admin's recovery invite). Pending ceremonies live for a minute,
-- so the table is rebuilt empty rather than copied.
DROP TABLE ceremonies;

--bun:split

CREATE TABLE ceremonies (
    id            TEXT    PRIMARY KEY,                 -- random, unguessable (step_up_grant: SHA-256 of the token)
    kind          TEXT    NOT NULL CHECK (kind IN ('register', 'login', 'add_passkey', 'step_up', 'step_up_grant', 'recover')),
    user_id       TEXT    REFERENCES users (id) ON DELETE CASCADE,
    session_data  BLOB    NOT NULL,                    -- webauthn.SessionData as JSON
    payload       BLOB    NOT NULL DEFAULT '{}',       -- kind-specific JSON
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);

--bun:split

CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);

--bun:split

-- A recovery invite resets one account's passkeys: the user registers a new
-- passkey with it; the old passkeys are deleted and every session ends.
ALTER TABLE invites ADD COLUMN recovery_user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
