-- Audit entries older than --audit-retention are deleted by the periodic
-- cleanup, oldest first, through this index.
CREATE INDEX audit_log_at ON audit_log (at);
