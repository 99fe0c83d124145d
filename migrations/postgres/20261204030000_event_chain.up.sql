-- Each group's events form a hash chain (issue #18, item 2;
-- docs/verification.md): every group event that all member devices receive
-- alike (recipient_device_id NULL) carries prev_hash and hash =
-- SHA-256(label ‖ group_id ‖ prev_hash ‖ seq ‖ kind ‖ epoch ‖ sender ‖
-- payload), computed in the writer's transaction. groups.chain_head is the
-- hash of the group's newest chained event. Genesis: events stored before
-- this migration have no hashes; a group's first event after it has
-- prev_hash = 32 zero bytes (chain_head NULL reads as genesis).
ALTER TABLE events ADD COLUMN prev_hash BYTEA;

--bun:split

ALTER TABLE events ADD COLUMN hash BYTEA;

--bun:split

ALTER TABLE groups ADD COLUMN chain_head BYTEA;
