-- Which devices have a stream open on which instance, for Web Push with
-- several instances on one PostgreSQL database (a device streaming from
-- instance A must get no push for an event committed on B). One SQLite
-- process knows its own streams, so on SQLite these tables stay empty; they
-- exist on both engines so that both schemas stay the same.
CREATE TABLE cluster_instances (
    id      TEXT    PRIMARY KEY,  -- random per process start
    seen_at INTEGER NOT NULL      -- Unix ms of its last heartbeat
);

--bun:split

CREATE TABLE stream_presence (
    device_id   TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    instance_id TEXT    NOT NULL REFERENCES cluster_instances (id) ON DELETE CASCADE,
    since       INTEGER NOT NULL,  -- Unix ms
    PRIMARY KEY (device_id, instance_id)
);
