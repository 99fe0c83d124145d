-- PostgreSQL twin of sqlite/20261203050000_stream_presence.up.sql.
-- Which devices have a stream open on which instance, for Web Push with
-- several instances on one database (a device streaming from instance A
-- must get no push for an event committed on B).
CREATE TABLE cluster_instances (
    id      TEXT    PRIMARY KEY,  -- random per process start
    seen_at BIGINT  NOT NULL      -- Unix ms of its last heartbeat
);

--bun:split

CREATE TABLE stream_presence (
    device_id   TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    instance_id TEXT    NOT NULL REFERENCES cluster_instances (id) ON DELETE CASCADE,
    since       BIGINT  NOT NULL,  -- Unix ms
    PRIMARY KEY (device_id, instance_id)
);
