-- PostgreSQL twin of sqlite/20261129001000_server_secrets.up.sql.
CREATE TABLE server_secrets (
    name       TEXT    PRIMARY KEY,
    value      BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);
