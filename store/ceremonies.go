package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// ErrCeremonyGone is returned when a ceremony does not exist, has expired,
// was already finished, or belongs to another kind or user.
var ErrCeremonyGone = models.Errorf(models.EGONE, "ceremony_expired",
	"the ceremony is unknown, expired or already finished: begin again")

// CreateCeremony stores a pending WebAuthn ceremony under a fresh random id
// (256 bits, base64url) that expires ttl from now on the server clock, and
// removes expired ceremonies while it is there.
func (s *Store) CreateCeremony(ctx context.Context, c *models.Ceremony, ttl time.Duration) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("ceremony id: %w", err)
	}
	c.ID = base64.RawURLEncoding.EncodeToString(b)
	if c.Payload == nil {
		c.Payload = []byte("{}")
	}
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		now := tx.Now()
		c.CreatedAt, c.ExpiresAt = now, now.Add(ttl)
		if _, err := tx.NewRaw(`DELETE FROM ceremonies WHERE expires_at <= ?`, models.Millis(now)).Exec(ctx); err != nil {
			return fmt.Errorf("expire ceremonies: %w", err)
		}
		var userID any
		if c.UserID != "" {
			userID = c.UserID
		}
		_, err := tx.NewRaw(`INSERT INTO ceremonies (id, kind, user_id, session_data, payload, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.ID, string(c.Kind), userID, c.SessionData, c.Payload, models.Millis(c.CreatedAt), models.Millis(c.ExpiresAt)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("insert ceremony: %w", err)
		}
		return nil
	})
}

// ConsumeCeremony deletes and returns a pending ceremony of the given kind
// (DELETE … RETURNING, so a second finish finds nothing). It fails with
// ErrCeremonyGone when the ceremony is unknown, of another kind, or expired
// by the server clock; an expired or mismatched ceremony is deleted too.
func (s *Store) ConsumeCeremony(ctx context.Context, id string, kind models.CeremonyKind) (*models.Ceremony, error) {
	var c *models.Ceremony
	var expired bool
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var row struct {
			Kind        string         `bun:"kind"`
			UserID      sql.NullString `bun:"user_id"`
			SessionData []byte         `bun:"session_data"`
			Payload     []byte         `bun:"payload"`
			CreatedAt   int64          `bun:"created_at"`
			ExpiresAt   int64          `bun:"expires_at"`
		}
		err := tx.NewRaw(`DELETE FROM ceremonies WHERE id = ? RETURNING kind, user_id, session_data, payload, created_at, expires_at`, id).Scan(ctx, &row)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrCeremonyGone
		}
		if err != nil {
			return fmt.Errorf("consume ceremony: %w", err)
		}
		c = &models.Ceremony{ID: id, Kind: models.CeremonyKind(row.Kind), UserID: row.UserID.String,
			SessionData: row.SessionData, Payload: row.Payload,
			CreatedAt: models.FromMillis(row.CreatedAt), ExpiresAt: models.FromMillis(row.ExpiresAt)}
		expired = row.ExpiresAt <= models.Millis(tx.Now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The row is gone either way; refuse what may not be used.
	if c.Kind != kind || expired {
		return nil, ErrCeremonyGone
	}
	return c, nil
}
