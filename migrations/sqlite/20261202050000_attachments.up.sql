-- Attachments: client-encrypted blobs stored outside the message path (in
-- the data directory's attachments/ folder, named by id). The server knows
-- a blob's group, uploader, size and times, never its content or which
-- message refers to it. Deleting the group deletes the rows (the cleanup
-- then removes files that no row names).
CREATE TABLE attachments (
    id                 TEXT    PRIMARY KEY,              -- random UUID, the blob's name
    group_id           BLOB    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    uploader_device_id TEXT    REFERENCES devices (id) ON DELETE SET NULL,
    uploader_user_id   TEXT    NOT NULL,
    size               INTEGER NOT NULL,                 -- declared ciphertext bytes, counted in the group's bytes_used
    upload_seq         INTEGER NOT NULL,                 -- the feed position it was created at (membership rule)
    created_at         INTEGER NOT NULL,                 -- Unix milliseconds
    completed_at       INTEGER                           -- NULL while the upload is incomplete
);

--bun:split

CREATE INDEX attachments_group ON attachments (group_id);

--bun:split

CREATE INDEX attachments_created_at ON attachments (created_at);

--bun:split

CREATE INDEX attachments_uploader_user ON attachments (uploader_user_id);
