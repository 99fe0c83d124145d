-- PostgreSQL twin of sqlite/20261202040100_push.up.sql.
-- Web Push (RFC 8030/8291/8292). One subscription per device: the endpoint
-- the browser's (or UnifiedPush distributor's) push service gave it and
-- the device's message-encryption keys (base64url, as PushSubscription
-- JSON carries them). Deleted with the device, when the device is revoked
-- or its user disabled, when the device unsubscribes, and when the push
-- service answers 404/410.
CREATE TABLE push_subscriptions (
    device_id  TEXT    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    endpoint   TEXT    NOT NULL,
    p256dh     TEXT    NOT NULL,
    auth       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

--bun:split

-- The durable push outbox: at most one row per device (a burst of events
-- coalesces into it). The row is written in the same transaction as the
-- event that calls for it, so a crash between commit and send loses no
-- wake-up; a worker outside the single writer claims due rows (lease),
-- sends, and deletes the row unless a newer event bumped its version
-- meanwhile. Nothing here says which group or sender caused it.
CREATE TABLE push_outbox (
    device_id   TEXT    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,            -- newest event seq it wakes for
    urgency     TEXT    NOT NULL CHECK (urgency IN ('normal', 'high')),
    version     BIGINT  NOT NULL,            -- bumped by every coalesced event
    due_at      BIGINT  NOT NULL,            -- Unix ms: not sent before
    lease_until BIGINT  NOT NULL DEFAULT 0,  -- Unix ms: claimed by a worker until
    attempts    BIGINT  NOT NULL DEFAULT 0,  -- failed sends in a row
    created_at  BIGINT  NOT NULL
);

--bun:split

CREATE INDEX push_outbox_due ON push_outbox (due_at);
