-- Administration: the audit log and the settings an admin may change at run
-- time. Times are Unix milliseconds (UTC).

-- Append-only record of every admin action and security event. Actor and
-- target ids are plain text, not foreign keys: an entry outlives the user
-- or invite it names (a deleted user's history stays readable), so the
-- actor's username is kept as it was at the time.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- order of recording, never reused
    at              INTEGER NOT NULL,
    actor_user_id   TEXT,                              -- NULL: the server itself or an anonymous client
    actor_username  TEXT,
    actor_device_id TEXT,
    action          TEXT    NOT NULL,                  -- e.g. user.disable, auth.login_failed
    target_type     TEXT,                              -- user, invite, session, settings, passkey, device
    target_id       TEXT,
    detail          TEXT    NOT NULL DEFAULT '{}',     -- JSON object; never secrets
    client_ip       TEXT
);

--bun:split

CREATE INDEX audit_log_action ON audit_log (action, id);

--bun:split

CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id) WHERE actor_user_id IS NOT NULL;

--bun:split

CREATE INDEX audit_log_target ON audit_log (target_id, id) WHERE target_id IS NOT NULL;

--bun:split

-- Run-time settings that override the configuration. A missing row means
-- the configured value applies; the value is JSON.
CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT                                    -- user id of the admin, NULL from the CLI
);
