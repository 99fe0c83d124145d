package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/models"
)

// sessionAuthRow is what authentication reads in one query.
type sessionAuthRow struct {
	SessionID  string `bun:"session_id"`
	UserID     string `bun:"user_id"`
	DeviceID   string `bun:"device_id"`
	Username   string `bun:"username"`
	Role       string `bun:"role"`
	ExpiresAt  int64  `bun:"expires_at"`
	LastSeenAt int64  `bun:"last_seen_at"`
	SRevoked   *int64 `bun:"s_revoked"`
	DRevoked   *int64 `bun:"d_revoked"`
	UDisabled  *int64 `bun:"u_disabled"`
}

// ErrSessionInvalid is returned for unknown, expired, revoked or disabled
// sessions; callers must not tell these apart to clients.
var ErrSessionInvalid = models.Errorf(models.EUNAUTHORIZED, "invalid_token", "the session token is invalid, expired or revoked")

// Authenticate resolves a token hash to a principal. It reads only (see
// TouchSession for last-seen tracking), and answers from the session cache
// when no write that could change the session committed since it was read
// (see authCache).
func (s *Store) Authenticate(ctx context.Context, tokenHash []byte) (*models.Principal, error) {
	if len(tokenHash) != 32 {
		return nil, ErrSessionInvalid
	}
	key := [32]byte(tokenHash)
	row, ok := s.auth.get(key)
	if !ok {
		gen := s.auth.generation()
		err := s.readStmts.auth.QueryRowContext(ctx, tokenHash).Scan(&row.SessionID, &row.UserID, &row.DeviceID, &row.Username,
			&row.Role, &row.ExpiresAt, &row.LastSeenAt, &row.SRevoked, &row.DRevoked, &row.UDisabled)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrSessionInvalid
		}
		if err != nil {
			return nil, fmt.Errorf("authenticate session: %w", err)
		}
		if row.SRevoked != nil || row.DRevoked != nil || row.UDisabled != nil {
			return nil, ErrSessionInvalid
		}
		s.auth.put(key, gen, row)
	}
	if row.ExpiresAt <= models.Millis(s.now()) {
		return nil, ErrSessionInvalid
	}
	return &models.Principal{
		UserID:     row.UserID,
		Username:   row.Username,
		Role:       models.Role(row.Role),
		DeviceID:   row.DeviceID,
		SessionID:  row.SessionID,
		LastSeenAt: models.FromMillis(row.LastSeenAt),
		ExpiresAt:  models.FromMillis(row.ExpiresAt),
	}, nil
}

// TouchSession records that a session (authenticated by tokenHash) and its
// device were just used. It changes nothing authentication decides on, so
// it keeps the session cache valid and updates the cached last-seen time
// (otherwise every request would see the old time and touch again).
func (s *Store) TouchSession(ctx context.Context, tokenHash []byte, sessionID, deviceID string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth() // last_seen_at only
		now := models.Millis(tx.Now())
		if _, err := tx.NewRaw(`UPDATE sessions SET last_seen_at = ? WHERE id = ?`, now, sessionID).Exec(ctx); err != nil {
			return fmt.Errorf("touch session: %w", err)
		}
		if _, err := tx.NewRaw(`UPDATE devices SET last_seen_at = ? WHERE id = ?`, now, deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("touch device: %w", err)
		}
		if len(tokenHash) == 32 {
			key := [32]byte(tokenHash)
			tx.AfterCommit(func() { s.auth.touch(key, sessionID, now) })
		}
		return nil
	})
}

// InsertSession creates a session for a device inside a use case and
// returns its id. The caller generated the token and passes only its hash.
func InsertSession(ctx context.Context, tx *Tx, userID, deviceID string, tokenHash []byte, ttl time.Duration) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	now := tx.Now()
	_, err := tx.NewRaw(`INSERT INTO sessions (id, token_hash, user_id, device_id, created_at, expires_at, last_seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`, id, tokenHash, userID, deviceID, models.Millis(now), models.Millis(now.Add(ttl)), models.Millis(now)).Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("insert session: %w", err)
	}
	return id, nil
}

// InsertDevice creates a device for a user inside a use case.
func InsertDevice(ctx context.Context, tx *Tx, userID, name string) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	if err := insertDeviceID(ctx, tx, id, userID, name); err != nil {
		return "", err
	}
	return id, nil
}

// insertDeviceID creates a device under an id chosen before (a bound
// sign-in allocates it when the ceremony begins).
func insertDeviceID(ctx context.Context, tx *Tx, id, userID, name string) error {
	_, err := tx.NewRaw(`INSERT INTO devices (id, user_id, name, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
		id, userID, name, models.Millis(tx.Now()), models.Millis(tx.Now())).Exec(ctx)
	if err != nil {
		if isUniqueViolation(err) {
			return ErrBindingDevice
		}
		return fmt.Errorf("insert device: %w", err)
	}
	return nil
}

// InsertUser creates a user inside a use case, with a fresh random WebAuthn
// user handle, and returns its id. username must already be case-folded
// and validated.
func InsertUser(ctx context.Context, tx *Tx, username, displayName string, role models.Role) (string, error) {
	handle, err := NewUserHandle()
	if err != nil {
		return "", err
	}
	return insertUserWithHandle(ctx, tx, username, displayName, role, handle)
}

// UserHandleBytes is the size of WebAuthn user handles (the spec allows 64).
const UserHandleBytes = 32

// NewUserHandle returns a fresh random WebAuthn user handle.
func NewUserHandle() ([]byte, error) {
	handle := make([]byte, UserHandleBytes)
	if _, err := rand.Read(handle); err != nil {
		return nil, fmt.Errorf("user handle: %w", err)
	}
	return handle, nil
}

func insertUserWithHandle(ctx context.Context, tx *Tx, username, displayName string, role models.Role, handle []byte) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	_, err := tx.NewRaw(`INSERT INTO users (id, username, display_name, role, webauthn_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, username, displayName, string(role), handle, models.Millis(tx.Now())).Exec(ctx)
	if err != nil {
		if isUniqueViolation(err) {
			return "", models.Errorf(models.ECONFLICT, "username_taken", "the username %q is taken", username)
		}
		return "", fmt.Errorf("insert user: %w", err)
	}
	return id, nil
}
