package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// AppendAudit records an audit entry inside a use case, so the entry is
// committed together with the change it describes, or not at all.
func AppendAudit(ctx context.Context, tx *Tx, e models.AuditEntry) error {
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(e.Detail); err != nil {
			return fmt.Errorf("encode audit detail: %w", err)
		}
	}
	_, err := tx.NewRaw(`INSERT INTO audit_log (at, actor_user_id, actor_username, actor_device_id, action, target_type, target_id, detail, client_ip)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		models.Millis(tx.Now()), nullable(e.Actor.UserID), nullable(e.Actor.Username), nullable(e.Actor.DeviceID), e.Action,
		nullable(e.TargetType), nullable(e.TargetID), string(detail), nullable(e.Actor.IP)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// Audit records an entry on its own, for events that change nothing else
// (a failed login, a refused admin request).
func (s *Store) Audit(ctx context.Context, e models.AuditEntry) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error { return AppendAudit(ctx, tx, e) })
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	// Before returns entries with an id below it (the cursor of the next
	// page, newest first).
	Before int64
	// Action matches exactly, or a prefix when it ends with '.' ("auth.").
	Action string
	// ActorUserID and TargetID match exactly.
	ActorUserID string
	TargetID    string
	// Since and Until bound the time, Until exclusive.
	Since, Until time.Time
	// Limit is the page size (1 to MaxAuditPage; 0 means 50).
	Limit int
}

// MaxAuditPage bounds one page of the audit log.
const MaxAuditPage = 200

// AuditPage is one page of the audit log, newest first.
type AuditPage struct {
	Entries []models.AuditEntry
	// NextBefore is the cursor of the next (older) page; 0 when this is
	// the last one.
	NextBefore int64
}

type auditRow struct {
	ID            int64   `bun:"id"`
	At            int64   `bun:"at"`
	ActorUserID   *string `bun:"actor_user_id"`
	ActorUsername *string `bun:"actor_username"`
	ActorDeviceID *string `bun:"actor_device_id"`
	Action        string  `bun:"action"`
	TargetType    *string `bun:"target_type"`
	TargetID      *string `bun:"target_id"`
	Detail        string  `bun:"detail"`
	ClientIP      *string `bun:"client_ip"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ListAudit reads a page of the audit log, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) (*AuditPage, error) {
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 1 || f.Limit > MaxAuditPage {
		return nil, models.Errorf(models.EINVALID, "invalid_limit", "limit must be 1 to %d", MaxAuditPage)
	}
	var where []string
	var args []any
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	switch {
	case strings.HasSuffix(f.Action, "."):
		// A family of actions: [prefix, prefix with the dot bumped). The
		// unary + keeps SQLite on the primary key in id order, stopping
		// at the page size, instead of sorting every match of the range.
		a := s.eng.unindexed("action")
		where = append(where, a+" >= ? AND "+a+" < ?")
		args = append(args, f.Action, strings.TrimSuffix(f.Action, ".")+"/")
	case f.Action != "":
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.ActorUserID != "" {
		where, args = append(where, "actor_user_id = ?"), append(args, f.ActorUserID)
	}
	if f.TargetID != "" {
		where, args = append(where, "target_id = ?"), append(args, f.TargetID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, models.Millis(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, models.Millis(f.Until))
	}
	q := `SELECT id, at, actor_user_id, actor_username, actor_device_id, action, target_type, target_id, detail, client_ip FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.Limit+1)
	var rows []auditRow
	if err := s.rdb.NewRaw(q, args...).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	page := &AuditPage{Entries: make([]models.AuditEntry, 0, min(len(rows), f.Limit))}
	for i, r := range rows {
		if i == f.Limit {
			page.NextBefore = rows[i-1].ID
			break
		}
		e := models.AuditEntry{
			ID: r.ID, At: models.FromMillis(r.At), Action: r.Action,
			Actor:      models.Actor{UserID: deref(r.ActorUserID), Username: deref(r.ActorUsername), DeviceID: deref(r.ActorDeviceID), IP: deref(r.ClientIP)},
			TargetType: deref(r.TargetType), TargetID: deref(r.TargetID),
		}
		if r.Detail != "" && r.Detail != "{}" {
			if err := json.Unmarshal([]byte(r.Detail), &e.Detail); err != nil {
				return nil, fmt.Errorf("decode audit detail %d: %w", r.ID, err)
			}
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// AuditAggregated records a repeated security event (a refused admin
// request) as one audit entry per actor per minute with a count: the first
// occurrence in a minute inserts the entry, later ones in the same minute
// add to its "count" and to its per-key tally in "by_<key>" (e.g. which
// operations were refused). A flood of refusals therefore grows the log by
// one row a minute per actor, not one per request. e.Actor.UserID must be
// set; e.Detail is kept from the first occurrence.
func (s *Store) AuditAggregated(ctx context.Context, e models.AuditEntry, key, value string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth() // audit_log only
		minute := tx.Now().Truncate(time.Minute)
		var row struct {
			ID     int64  `bun:"id"`
			Detail string `bun:"detail"`
		}
		err := tx.NewRaw(`SELECT id, detail FROM audit_log WHERE actor_user_id = ? AND action = ? AND at >= ?
ORDER BY id DESC LIMIT 1`, e.Actor.UserID, e.Action, models.Millis(minute)).Scan(ctx, &row)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read audit aggregate: %w", err)
		}
		if err == nil {
			detail := map[string]any{}
			_ = json.Unmarshal([]byte(row.Detail), &detail)
			n, _ := detail["count"].(float64)
			detail["count"] = int64(n) + 1
			by, _ := detail["by_"+key].(map[string]any)
			if by == nil {
				by = map[string]any{}
			}
			c, _ := by[value].(float64)
			by[value] = int64(c) + 1
			detail["by_"+key] = by
			b, err := json.Marshal(detail)
			if err != nil {
				return fmt.Errorf("encode audit detail: %w", err)
			}
			if _, err := tx.NewRaw(`UPDATE audit_log SET detail = ? WHERE id = ?`, string(b), row.ID).Exec(ctx); err != nil {
				return fmt.Errorf("update audit aggregate: %w", err)
			}
			return nil
		}
		d := map[string]any{}
		for k, v := range e.Detail {
			d[k] = v
		}
		d["count"] = 1
		d["by_"+key] = map[string]any{value: 1}
		e.Detail = d
		return AppendAudit(ctx, tx, e)
	})
}
