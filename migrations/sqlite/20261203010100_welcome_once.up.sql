-- A Welcome is stored once per commit (issue #19, finding 2): the commit's
-- Welcome bytes go in `welcomes`, counted once in the group's bytes_used,
-- and each added device gets a `welcome` event that points at them
-- (events.welcome_id, its own payload empty), as XMTP's welcome pointers.
-- A device's feed reads the pointed-to bytes, so what it receives is
-- unchanged. Welcome events stored before this migration keep their own
-- payload and no pointer; both forms are read alike. A welcomes row is
-- deleted, and its bytes given back, with the last event pointing at it
-- (store.DeleteEvents) or with its group.
CREATE TABLE welcomes (
    id         INTEGER PRIMARY KEY,
    group_id   BLOB    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

--bun:split

CREATE INDEX welcomes_group ON welcomes (group_id);

--bun:split

ALTER TABLE events ADD COLUMN welcome_id INTEGER;

--bun:split

CREATE INDEX events_welcome ON events (welcome_id) WHERE welcome_id IS NOT NULL;
