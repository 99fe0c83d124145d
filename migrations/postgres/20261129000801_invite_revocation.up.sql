-- PostgreSQL twin of sqlite/20261129000801_invite_revocation.up.sql.
ALTER TABLE invites ADD COLUMN revoked_at BIGINT;
