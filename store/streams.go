package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// SessionActive returns ErrSessionInvalid when a session is revoked,
// expired, or belongs to a revoked device or disabled user. Open streams
// call it on every heartbeat, behind the hub's immediate SessionsEnded.
func (s *Store) SessionActive(ctx context.Context, sessionID string) error {
	var ok bool
	err := s.rdb.NewRaw(`
SELECT s.revoked_at IS NULL AND d.revoked_at IS NULL AND u.disabled_at IS NULL AND s.expires_at > ?
FROM sessions s JOIN devices d ON d.id = s.device_id JOIN users u ON u.id = s.user_id
WHERE s.id = ?`, models.Millis(s.now()), sessionID).Scan(ctx, &ok)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrSessionInvalid
	}
	if err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	if !ok {
		return ErrSessionInvalid
	}
	return nil
}
