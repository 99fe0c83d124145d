-- PostgreSQL twin of sqlite/20261129000300_key_packages.up.sql.
CREATE TABLE key_packages (
    ref          BYTEA   PRIMARY KEY,
    device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cipher_suite BIGINT  NOT NULL,
    last_resort  BIGINT  NOT NULL DEFAULT 0 CHECK (last_resort IN (0, 1)),
    data         BYTEA   NOT NULL,
    not_after    BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL
);

--bun:split

CREATE INDEX key_packages_pick ON key_packages (device_id, cipher_suite, last_resort, created_at);

--bun:split

CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id, cipher_suite) WHERE last_resort = 1;

--bun:split

CREATE TABLE key_package_claims (
    claimer_device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ref               BYTEA   NOT NULL,
    device_id         TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    claimed_at        BIGINT  NOT NULL,
    PRIMARY KEY (claimer_device_id, ref)
);

--bun:split

CREATE INDEX key_package_claims_claimed_at ON key_package_claims (claimed_at);
