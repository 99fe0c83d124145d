-- People and devices (issue 14). A device leaves a group with a self-Remove
-- proposal; the server keeps it by reference until a commit at its epoch
-- includes the device in removed_devices (the next commit must).
CREATE TABLE pending_removals (
    group_id     BLOB    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    device_id    TEXT    NOT NULL,               -- the leaving device (no FK: the device may be deleted meanwhile)
    epoch        INTEGER NOT NULL,               -- the proposal's epoch: a commit at this epoch must include it
    proposal_seq INTEGER NOT NULL,               -- the stored proposal event
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (group_id, device_id)
);

--bun:split

-- When the owner was last told that this package expires soon (Unix ms);
-- NULL: not yet told.
ALTER TABLE key_packages ADD COLUMN expiry_notified_at INTEGER;

--bun:split

CREATE INDEX key_packages_not_after ON key_packages (not_after);
