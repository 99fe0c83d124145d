-- Groups and the delivery service. A message is stored once, in `events`,
-- with one global sequence; a device's feed is a query over its
-- memberships, not a copy per recipient.
CREATE TABLE groups (
    id                BLOB    PRIMARY KEY,       -- MLS group_id bytes (client-chosen)
    epoch             INTEGER NOT NULL DEFAULT 0,
    group_info        BLOB,                      -- latest MLSMessage(group_info), if given
    bytes_used        INTEGER NOT NULL DEFAULT 0,
    created_by_device TEXT    REFERENCES devices (id) ON DELETE SET NULL,
    created_at        INTEGER NOT NULL
);

--bun:split

-- Membership intervals: a device sees group events with
-- joined_seq < seq <= left_seq (left_seq NULL while a member). A device
-- removed by the commit at seq R receives R and nothing after.
CREATE TABLE group_members (
    id         INTEGER PRIMARY KEY,
    group_id   BLOB    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    device_id  TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    joined_seq INTEGER NOT NULL,
    left_seq   INTEGER
);

--bun:split

CREATE UNIQUE INDEX group_members_active ON group_members (group_id, device_id) WHERE left_seq IS NULL;

--bun:split

CREATE INDEX group_members_device ON group_members (device_id, group_id);

--bun:split

CREATE TABLE events (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT, -- global order, never reused
    id                  TEXT    NOT NULL UNIQUE,           -- server-generated UUID
    server_ts           INTEGER NOT NULL,                  -- Unix microseconds, never decreasing
    kind                TEXT    NOT NULL CHECK (kind IN ('application', 'proposal', 'commit', 'welcome', 'notice')),
    group_id            BLOB    REFERENCES groups (id) ON DELETE CASCADE,
    epoch               INTEGER,
    sender_device_id    TEXT,
    recipient_device_id TEXT    REFERENCES devices (id) ON DELETE CASCADE,
    payload             BLOB    NOT NULL,
    CHECK (group_id IS NOT NULL OR recipient_device_id IS NOT NULL)
);

--bun:split

CREATE INDEX events_group_seq ON events (group_id, seq) WHERE group_id IS NOT NULL AND recipient_device_id IS NULL;

--bun:split

CREATE INDEX events_recipient_seq ON events (recipient_device_id, seq) WHERE recipient_device_id IS NOT NULL;

--bun:split

-- The highest sequence each device has processed (explicit acks).
CREATE TABLE device_cursors (
    device_id  TEXT    PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    acked_seq  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

--bun:split

-- Idempotency keys: a retried send returns the first result.
CREATE TABLE idempotency_keys (
    device_id  TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    request_hash BLOB  NOT NULL,
    response   BLOB    NOT NULL,                 -- JSON of the original result
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, key)
);

--bun:split

-- Cleanup deletes keys older than their retention (24 h) in created_at order.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
