package store

import (
	"context"
	"fmt"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// cleanupChunk bounds the rows one cleanup use case deletes, so the writer
// is never held long; a cleanup loops until a chunk comes back short.
const cleanupChunk = 1000

// deleteInChunks runs `DELETE FROM table WHERE rowid IN (SELECT rowid FROM
// table WHERE where LIMIT chunk)` in successive use cases until fewer than
// a chunk are deleted or ctx ends. args computes the WHERE arguments from
// the use case's clock.
func (s *Store) deleteInChunks(ctx context.Context, what, table, where string, args func(now time.Time) []any) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			id := tx.w.eng.rowID()
			q := `DELETE FROM ` + table + ` WHERE ` + id + ` IN (SELECT ` + id + ` FROM ` + table + ` WHERE ` + where + ` LIMIT ?)`
			res, err := tx.NewRaw(q, append(args(tx.Now()), cleanupChunk)...).Exec(ctx)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete %s: %w", what, err)
		}
		total += n
		if n < cleanupChunk {
			return total, nil
		}
	}
}

// DeleteExpiredKeyPackages deletes key packages whose lifetime has ended,
// last-resort ones included.
func (s *Store) DeleteExpiredKeyPackages(ctx context.Context) (int64, error) {
	return s.deleteInChunks(ctx, "expired key packages", "key_packages", `not_after < ?`,
		func(now time.Time) []any { return []any{models.Millis(now)} })
}

// DeleteRevokedDeviceKeyPackages deletes every key package of revoked
// devices (claims already skip them).
func (s *Store) DeleteRevokedDeviceKeyPackages(ctx context.Context) (int64, error) {
	return s.deleteInChunks(ctx, "key packages of revoked devices", "key_packages",
		`device_id IN (SELECT id FROM devices WHERE revoked_at IS NOT NULL)`,
		func(time.Time) []any { return nil })
}

// DeleteOldKeyPackageClaims deletes claim records older than age. Pass the
// longest key-package lifetime plus a margin: by then the claimed package
// has expired and no valid Welcome can address it.
func (s *Store) DeleteOldKeyPackageClaims(ctx context.Context, age time.Duration) (int64, error) {
	return s.deleteInChunks(ctx, "old key package claims", "key_package_claims", `claimed_at < ?`,
		func(now time.Time) []any { return []any{models.Millis(now.Add(-age))} })
}

// DeleteEndedSessions deletes sessions that expired or were revoked more
// than grace ago (authentication refuses them already; the grace keeps
// them visible for a while, e.g. in a device's session list).
func (s *Store) DeleteEndedSessions(ctx context.Context, grace time.Duration) (int64, error) {
	return s.deleteInChunks(ctx, "ended sessions", "sessions", `expires_at < ? OR revoked_at < ?`,
		func(now time.Time) []any {
			cut := models.Millis(now.Add(-grace))
			return []any{cut, cut}
		})
}

// DeleteExpiredCeremonies deletes WebAuthn ceremonies whose challenge has
// expired (CreateCeremony also sweeps them; this covers idle servers).
func (s *Store) DeleteExpiredCeremonies(ctx context.Context) (int64, error) {
	return s.deleteInChunks(ctx, "expired ceremonies", "ceremonies", `expires_at <= ?`,
		func(now time.Time) []any { return []any{models.Millis(now)} })
}

// DeleteDeadInvites deletes invites that expired or were used up more than
// grace ago (they can register nobody; the grace keeps them for an admin
// list for a while). An invite's use time is not recorded, so a used-up
// invite goes once it is older than grace.
func (s *Store) DeleteDeadInvites(ctx context.Context, grace time.Duration) (int64, error) {
	return s.deleteInChunks(ctx, "dead invites", "invites", `expires_at < ? OR (uses_left = 0 AND created_at < ?)`,
		func(now time.Time) []any {
			cut := models.Millis(now.Add(-grace))
			return []any{cut, cut}
		})
}

// DeleteOldAuditEntries deletes audit-log entries recorded before before,
// in chunks, and then records how many it deleted (action audit.pruned), so
// the log itself says that and when it was shortened.
func (s *Store) DeleteOldAuditEntries(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.deleteInChunks(ctx, "old audit entries", "audit_log", `at < ?`,
		func(time.Time) []any { return []any{models.Millis(before)} })
	if n > 0 {
		entry := models.AuditEntry{Action: models.AuditPruned,
			Detail: map[string]any{"deleted": n, "before": before.UTC().Format(time.RFC3339)}}
		if aerr := s.Audit(ctx, entry); aerr != nil && err == nil {
			err = fmt.Errorf("record audit pruning: %w", aerr)
		}
	}
	return n, err
}

// ForgetOldAuditIPs clears the client address of audit entries recorded
// before a time (--ip-retention): the audit log is the only place the
// server keeps IP addresses, and only for that long.
func (s *Store) ForgetOldAuditIPs(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			res, err := tx.NewRaw(`UPDATE audit_log SET client_ip = NULL WHERE id IN
(SELECT id FROM audit_log WHERE client_ip IS NOT NULL AND at < ? LIMIT ?)`, models.Millis(before), cleanupChunk).Exec(ctx)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("forget old audit addresses: %w", err)
		}
		total += n
		if n < cleanupChunk {
			return total, nil
		}
	}
}
