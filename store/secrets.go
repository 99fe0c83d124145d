package store

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// SecretLoginDecoy names the key that derives decoy credential ids for
// login attempts with unknown usernames.
const SecretLoginDecoy = "login_decoy"

// ServerSecret returns the server's 32-byte random secret of that name,
// creating it on first use; it stays the same across restarts. Secrets are
// cached after the first read.
func (s *Store) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	s.secretsMu.Lock()
	defer s.secretsMu.Unlock()
	if v, ok := s.secrets[name]; ok {
		return v, nil
	}
	var value []byte
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return fmt.Errorf("random secret: %w", err)
		}
		if _, err := tx.NewRaw(`INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			name, fresh, models.Millis(tx.Now())).Exec(ctx); err != nil {
			return fmt.Errorf("store secret: %w", err)
		}
		return tx.NewRaw(`SELECT value FROM server_secrets WHERE name = ?`, name).Scan(ctx, &value)
	})
	if err != nil {
		return nil, fmt.Errorf("server secret %s: %w", name, err)
	}
	if s.secrets == nil {
		s.secrets = make(map[string][]byte)
	}
	s.secrets[name] = value
	return value, nil
}
