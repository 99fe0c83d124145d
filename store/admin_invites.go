package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// Invite states as the admin sees them.
const (
	InviteActive  = "active"
	InviteExpired = "expired"
	InviteUsedUp  = "used_up"
	InviteRevoked = "revoked"
)

// InviteInfo is an invite with its state and its creator's name.
type InviteInfo struct {
	models.Invite
	CreatedByUsername string
	RevokedAt         *time.Time
	Status            string
}

type inviteRow struct {
	ID                string  `bun:"id"`
	Role              string  `bun:"role"`
	CreatedBy         *string `bun:"created_by"`
	CreatedByUsername *string `bun:"created_by_username"`
	CreatedAt         int64   `bun:"created_at"`
	ExpiresAt         int64   `bun:"expires_at"`
	UsesLeft          int     `bun:"uses_left"`
	RevokedAt         *int64  `bun:"revoked_at"`
}

func (r *inviteRow) info(now int64) InviteInfo {
	i := InviteInfo{Invite: models.Invite{ID: r.ID, Role: models.Role(r.Role), CreatedBy: deref(r.CreatedBy),
		CreatedAt: models.FromMillis(r.CreatedAt), ExpiresAt: models.FromMillis(r.ExpiresAt), UsesLeft: r.UsesLeft},
		CreatedByUsername: deref(r.CreatedByUsername), RevokedAt: models.FromMillisPtr(r.RevokedAt)}
	switch {
	case r.RevokedAt != nil:
		i.Status = InviteRevoked
	case r.UsesLeft < 1:
		i.Status = InviteUsedUp
	case r.ExpiresAt <= now:
		i.Status = InviteExpired
	default:
		i.Status = InviteActive
	}
	return i
}

// AdminCreateInvite creates an invite for an admin and records it in the
// audit log (never the code), in one use case. The code exists only in
// the return value. An invite granting the admin role needs the admin's
// step-up grant for admin_invite (su), taken in the same use case; su is
// nil for a member invite.
func (s *Store) AdminCreateInvite(ctx context.Context, actor models.Actor, in NewInvite, su *StepUpCheck) (string, *models.Invite, error) {
	if in.Role == models.RoleAdmin && su == nil {
		return "", nil, ErrStepUpRequired
	}
	return s.createAuditedInvite(ctx, actor, in, nil, su)
}

// CreateAuditedInvite is AdminCreateInvite for the command line on the host
// (full trust: no step-up), with extra facts for the audit entry's detail
// (the command line records itself as the actor there).
func (s *Store) CreateAuditedInvite(ctx context.Context, actor models.Actor, in NewInvite, extra map[string]any) (string, *models.Invite, error) {
	return s.createAuditedInvite(ctx, actor, in, extra, nil)
}

func (s *Store) createAuditedInvite(ctx context.Context, actor models.Actor, in NewInvite, extra map[string]any, su *StepUpCheck) (string, *models.Invite, error) {
	if err := validateInvite(in); err != nil {
		return "", nil, err
	}
	var (
		code string
		inv  *models.Invite
	)
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		detail := map[string]any{}
		if err := takeAdminStepUp(ctx, tx, su, detail); err != nil {
			return err
		}
		var err error
		if code, inv, err = insertInvite(ctx, tx, in); err != nil {
			return err
		}
		detail["role"], detail["uses"], detail["expires_at"] = string(inv.Role), inv.UsesLeft, inv.ExpiresAt.Format(time.RFC3339)
		for k, v := range extra {
			detail[k] = v
		}
		return AppendAudit(ctx, tx, models.AuditEntry{Actor: actor, Action: models.AuditInviteCreate, TargetType: models.TargetInvite,
			TargetID: inv.ID, Detail: detail})
	})
	if err != nil {
		return "", nil, err
	}
	return code, inv, nil
}

// ListInvites returns the invites, newest first: with all, every invite
// ever made (the table keeps them), otherwise only those still usable.
func (s *Store) ListInvites(ctx context.Context, all bool) ([]InviteInfo, error) {
	now := models.Millis(s.now())
	q := `SELECT i.id, i.role, i.created_by, u.username AS created_by_username, i.created_at, i.expires_at, i.uses_left, i.revoked_at
FROM invites i LEFT JOIN users u ON u.id = i.created_by`
	args := []any{}
	if !all {
		q += ` WHERE i.revoked_at IS NULL AND i.uses_left > 0 AND i.expires_at > ?`
		args = append(args, now)
	}
	q += ` ORDER BY i.created_at DESC, i.id DESC LIMIT 1000`
	var rows []inviteRow
	if err := s.rdb.NewRaw(q, args...).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	out := make([]InviteInfo, len(rows))
	for i := range rows {
		out[i] = rows[i].info(now)
	}
	return out, nil
}

// RevokeInvite makes an invite unusable at once (its remaining uses drop
// to zero, so the registration path refuses it as used up) and records it.
// Revoking a revoked invite changes nothing.
func (s *Store) RevokeInvite(ctx context.Context, actor models.Actor, inviteID string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var r inviteRow
		err := tx.NewRaw(`SELECT id, role, created_at, expires_at, uses_left, revoked_at FROM invites WHERE id = ?`, inviteID).Scan(ctx, &r)
		if errors.Is(err, sql.ErrNoRows) {
			return models.Errorf(models.ENOTFOUND, "invite_not_found", "no such invite")
		}
		if err != nil {
			return fmt.Errorf("read invite: %w", err)
		}
		if r.RevokedAt != nil {
			return nil
		}
		if _, err := tx.NewRaw(`UPDATE invites SET uses_left = 0, revoked_at = ? WHERE id = ?`, models.Millis(tx.Now()), r.ID).Exec(ctx); err != nil {
			return fmt.Errorf("revoke invite: %w", err)
		}
		return AppendAudit(ctx, tx, models.AuditEntry{Actor: actor, Action: models.AuditInviteRevoke, TargetType: models.TargetInvite,
			TargetID: r.ID, Detail: map[string]any{"role": r.Role, "uses_left": r.UsesLeft}})
	})
}
