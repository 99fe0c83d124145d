package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/models"
)

// ErrInviteInvalid is returned for unknown, expired and used-up invites
// alike, so a guesser learns nothing from the difference.
var ErrInviteInvalid = models.Errorf(models.EFORBIDDEN, "invite_invalid", "the invite code is unknown, expired or used up")

// Invite limits.
const (
	MaxInviteUses = 1000
	MaxInviteTTL  = 365 * 24 * time.Hour
)

// NewInvite describes an invite to create.
type NewInvite struct {
	Role models.Role
	// CreatedBy is the admin who made it; empty for the CLI and first start.
	CreatedBy string
	TTL       time.Duration
	Uses      int
}

// CreateInvite makes an invite and returns its code, which exists only in
// this return value: the database keeps its SHA-256.
func (s *Store) CreateInvite(ctx context.Context, in NewInvite) (code string, inv *models.Invite, err error) {
	if err := validateInvite(in); err != nil {
		return "", nil, err
	}
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		code, inv, err = insertInvite(ctx, tx, in)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return code, inv, nil
}

// validateInvite checks an invite's role, lifetime and uses.
func validateInvite(in NewInvite) error {
	if in.Role != models.RoleAdmin && in.Role != models.RoleMember {
		return models.Errorf(models.EINVALID, "invalid_role", "the role must be admin or member")
	}
	if in.TTL < time.Minute || in.TTL > MaxInviteTTL {
		return models.Errorf(models.EINVALID, "invalid_expiry", "an invite lasts from 1 minute to %s", MaxInviteTTL)
	}
	if in.Uses < 1 || in.Uses > MaxInviteUses {
		return models.Errorf(models.EINVALID, "invalid_uses", "an invite has 1 to %d uses", MaxInviteUses)
	}
	return nil
}

func insertInvite(ctx context.Context, tx *Tx, in NewInvite) (string, *models.Invite, error) {
	code, hash := models.NewInviteCode()
	now := tx.Now()
	inv := &models.Invite{
		ID: uuid.Must(uuid.NewV7()).String(), Role: in.Role, CreatedBy: in.CreatedBy,
		CreatedAt: now, ExpiresAt: now.Add(in.TTL), UsesLeft: in.Uses,
	}
	var createdBy any
	if in.CreatedBy != "" {
		createdBy = in.CreatedBy
	}
	_, err := tx.NewRaw(`INSERT INTO invites (id, code_hash, role, created_by, created_at, expires_at, uses_left) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, hash, string(inv.Role), createdBy, models.Millis(now), models.Millis(inv.ExpiresAt), inv.UsesLeft).Exec(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("insert invite: %w", err)
	}
	return code, inv, nil
}

// CheckInvite returns the invite a code names if it can still be used. It
// only reads: the use is taken when registration completes.
func (s *Store) CheckInvite(ctx context.Context, codeHash []byte) (*models.Invite, error) {
	var row struct {
		ID        string         `bun:"id"`
		Role      string         `bun:"role"`
		CreatedAt int64          `bun:"created_at"`
		ExpiresAt int64          `bun:"expires_at"`
		UsesLeft  int            `bun:"uses_left"`
		Recovery  sql.NullString `bun:"recovery_user_id"`
	}
	err := s.rdb.NewRaw(`SELECT id, role, created_at, expires_at, uses_left, recovery_user_id FROM invites WHERE code_hash = ?`, codeHash).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrInviteInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("read invite: %w", err)
	}
	if row.UsesLeft < 1 || row.ExpiresAt <= models.Millis(s.now()) {
		return nil, ErrInviteInvalid
	}
	return &models.Invite{ID: row.ID, Role: models.Role(row.Role), CreatedAt: models.FromMillis(row.CreatedAt),
		ExpiresAt: models.FromMillis(row.ExpiresAt), UsesLeft: row.UsesLeft, RecoveryUserID: row.Recovery.String}, nil
}

// takeInviteUse consumes one use of a valid invite inside a use case and
// returns the role it grants.
func takeInviteUse(ctx context.Context, tx *Tx, codeHash []byte) (models.Role, error) {
	var role string
	err := tx.NewRaw(`UPDATE invites SET uses_left = uses_left - 1
WHERE code_hash = ? AND uses_left > 0 AND expires_at > ? AND recovery_user_id IS NULL RETURNING role`, codeHash, models.Millis(tx.Now())).Scan(ctx, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrInviteInvalid
	}
	if err != nil {
		return "", fmt.Errorf("take invite use: %w", err)
	}
	return models.Role(role), nil
}

// AdminBootstrap is what EnsureAdminInvite found or did.
type AdminBootstrap struct {
	// AdminExists: an enabled admin account exists; nothing was done.
	AdminExists bool
	// Code is set when a new admin invite was created (shown once).
	Code string
	// ExpiresAt is the expiry of the new or the existing admin invite.
	ExpiresAt time.Time
}

// EnsureAdminInvite makes sure a server without an admin can get one: when
// no enabled admin exists and no usable admin invite exists, it creates a
// one-use admin invite valid for ttl and returns its code. When a usable
// admin invite exists already it returns its expiry without a code (the
// code was shown when it was made and cannot be recovered).
func (s *Store) EnsureAdminInvite(ctx context.Context, ttl time.Duration) (AdminBootstrap, error) {
	var out AdminBootstrap
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		out = AdminBootstrap{}
		var admins int
		if err := tx.NewRaw(`SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL`).Scan(ctx, &admins); err != nil {
			return fmt.Errorf("count admins: %w", err)
		}
		if admins > 0 {
			out.AdminExists = true
			return nil
		}
		var exp sql.NullInt64
		if err := tx.NewRaw(`SELECT max(expires_at) FROM invites WHERE role = 'admin' AND uses_left > 0 AND expires_at > ? AND recovery_user_id IS NULL`,
			models.Millis(tx.Now())).Scan(ctx, &exp); err != nil {
			return fmt.Errorf("find admin invite: %w", err)
		}
		if exp.Valid {
			out.ExpiresAt = models.FromMillis(exp.Int64)
			return nil
		}
		code, inv, err := insertInvite(ctx, tx, NewInvite{Role: models.RoleAdmin, TTL: ttl, Uses: 1})
		if err != nil {
			return err
		}
		out.Code, out.ExpiresAt = code, inv.ExpiresAt
		return nil
	})
	return out, err
}
