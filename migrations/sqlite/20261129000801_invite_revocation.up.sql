-- An admin may revoke an invite: its remaining uses drop to zero (so the
-- registration path refuses it as used up) and this records when.
ALTER TABLE invites ADD COLUMN revoked_at INTEGER;
