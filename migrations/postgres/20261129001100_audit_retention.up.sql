-- PostgreSQL twin of sqlite/20261129001100_audit_retention.up.sql.
CREATE INDEX audit_log_at ON audit_log (at);
