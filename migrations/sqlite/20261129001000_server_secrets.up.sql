-- Random secrets the server makes for itself on first use and keeps across
-- restarts (e.g. the key deriving decoy credential ids for unknown
-- usernames: if it changed at each start, comparing answers across a
-- restart would tell which usernames exist).
CREATE TABLE server_secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
