-- Retention horizons of the feed. Cleanup deletes events that every member
-- device has acked (a per-group prefix) and events older than the retention
-- period (a global prefix, since seq and server_ts grow together). These two
-- high-water marks let a resume request tell whether events it needs may
-- have been deleted, and answer 410 Gone instead of a silent gap.
CREATE TABLE feed_retention (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    acked_through   INTEGER NOT NULL DEFAULT 0, -- highest seq deleted because every member had acked it
    expired_through INTEGER NOT NULL DEFAULT 0, -- highest seq deleted because it outlived the retention period
    expired_before  INTEGER NOT NULL DEFAULT 0  -- Unix milliseconds: events older than this were deleted
);

--bun:split

INSERT INTO feed_retention (id) VALUES (1);
