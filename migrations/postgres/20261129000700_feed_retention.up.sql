-- PostgreSQL twin of sqlite/20261129000700_feed_retention.up.sql.
CREATE TABLE feed_retention (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    acked_through   BIGINT NOT NULL DEFAULT 0,
    expired_through BIGINT NOT NULL DEFAULT 0,
    expired_before  BIGINT NOT NULL DEFAULT 0
);

--bun:split

INSERT INTO feed_retention (id) VALUES (1);
