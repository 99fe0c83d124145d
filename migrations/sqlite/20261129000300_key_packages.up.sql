-- Key-package directory: public MLS key packages, one pool per device, plus
-- at most one last-resort package per device and cipher suite.
CREATE TABLE key_packages (
    ref          BLOB    PRIMARY KEY,            -- KeyPackageRef (RFC 9420 5.2)
    device_id    TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cipher_suite INTEGER NOT NULL,
    last_resort  INTEGER NOT NULL DEFAULT 0 CHECK (last_resort IN (0, 1)),
    data         BLOB    NOT NULL,               -- the whole MLSMessage(key_package)
    not_after    INTEGER NOT NULL,               -- lifetime end, Unix ms
    created_at   INTEGER NOT NULL
);

--bun:split

CREATE INDEX key_packages_pick ON key_packages (device_id, cipher_suite, last_resort, created_at);

--bun:split

CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id, cipher_suite) WHERE last_resort = 1;

--bun:split

-- Who claimed which KeyPackageRef: Welcomes are routed by these. A
-- last-resort package can be claimed by several claimers.
CREATE TABLE key_package_claims (
    claimer_device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ref               BLOB    NOT NULL,
    device_id         TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE, -- owner of the package
    claimed_at        INTEGER NOT NULL,
    PRIMARY KEY (claimer_device_id, ref)
);

--bun:split

CREATE INDEX key_package_claims_claimed_at ON key_package_claims (claimed_at);
