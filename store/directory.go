package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/models"
)

// DirectoryDevice is an active device as the directory shows it, with its
// signature key and passkey binding (nil when unbound).
type DirectoryDevice struct {
	ID        string `bun:"id"`
	Name      string `bun:"name"`
	CreatedAt int64  `bun:"created_at"`
	bindingCols
}

// Binding is the device's passkey binding, nil when unbound.
func (d *DirectoryDevice) Binding() *models.Assertion { return d.binding() }

// DirectoryPasskey is a passkey as peers see it: what they need to verify
// device bindings and passkey approvals.
type DirectoryPasskey struct {
	CredentialID []byte
	PublicKey    []byte
	CreatedAt    int64
	Recovered    bool
	Approval     *models.Assertion
}

// DirectoryUser is a user as other signed-in users may see them: no role,
// no sessions, only active (not revoked) devices, and (exact lookups only)
// the passkeys' public keys and approvals.
type DirectoryUser struct {
	ID          string
	Username    string
	DisplayName string
	Devices     []DirectoryDevice
	Passkeys    []DirectoryPasskey
}

// errDirectoryNotFound is the one answer for a username that does not
// exist, belongs to a disabled account or was deleted, so the directory
// cannot tell them apart.
func errDirectoryNotFound() error {
	return models.Errorf(models.ENOTFOUND, "user_not_found", "no such user")
}

// LookupUser finds an enabled user by exact (case-folded) username, or by
// user id when name is a UUID, with the user's active devices and
// passkeys. Unknown, disabled and deleted users give the same not-found
// error.
func (s *Store) LookupUser(ctx context.Context, username string) (*DirectoryUser, error) {
	name := strings.ToLower(strings.TrimSpace(username))
	col := "username"
	if _, err := uuid.Parse(name); err == nil && len(name) == 36 {
		col = "id"
	}
	var row struct {
		ID          string `bun:"id"`
		Username    string `bun:"username"`
		DisplayName string `bun:"display_name"`
	}
	err := s.rdb.NewRaw(`SELECT id, username, display_name FROM users WHERE `+col+` = ? AND disabled_at IS NULL`, name).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errDirectoryNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	u := &DirectoryUser{ID: row.ID, Username: row.Username, DisplayName: row.DisplayName}
	if err := s.rdb.NewRaw(`SELECT d.id, d.name, d.created_at, `+bindingSelect+` FROM devices d
WHERE d.user_id = ? AND d.revoked_at IS NULL ORDER BY d.created_at, d.id`, row.ID).Scan(ctx, &u.Devices); err != nil {
		return nil, fmt.Errorf("read user's devices: %w", err)
	}
	if u.Devices == nil {
		u.Devices = []DirectoryDevice{}
	}
	creds, err := s.CredentialsByUser(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	u.Passkeys = make([]DirectoryPasskey, len(creds))
	for i, c := range creds {
		u.Passkeys[i] = DirectoryPasskey{CredentialID: c.CredentialID, PublicKey: c.PublicKey, CreatedAt: models.Millis(c.CreatedAt),
			Recovered: c.Recovered, Approval: c.Approval}
	}
	return u, nil
}

// MaxDirectorySearch bounds one page of a directory prefix search.
const MaxDirectorySearch = 20

// SearchUsers lists enabled users whose username starts with prefix (at
// least 2 characters), in username order, without their devices. Only
// offered when the admin setting directory is "search".
func (s *Store) SearchUsers(ctx context.Context, prefix string, limit int) ([]DirectoryUser, error) {
	p := strings.ToLower(strings.TrimSpace(prefix))
	if len(p) < 2 {
		return nil, models.Errorf(models.EINVALID, "prefix_too_short", "a directory search needs at least 2 characters")
	}
	if limit <= 0 || limit > MaxDirectorySearch {
		limit = MaxDirectorySearch
	}
	// A range on the unique username index instead of LIKE, so that no
	// character of the prefix acts as a wildcard.
	var rows []struct {
		ID          string `bun:"id"`
		Username    string `bun:"username"`
		DisplayName string `bun:"display_name"`
	}
	err := s.rdb.NewRaw(`SELECT id, username, display_name FROM users
WHERE username >= ? AND username < ? AND disabled_at IS NULL ORDER BY username LIMIT ?`, p, p+"\U0010FFFF", limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	out := make([]DirectoryUser, len(rows))
	for i, r := range rows {
		out[i] = DirectoryUser{ID: r.ID, Username: r.Username, DisplayName: r.DisplayName}
	}
	return out, nil
}

// SetDisplayName changes the display name of a user (already cleaned by
// models.CleanName) and returns the user.
func (s *Store) SetDisplayName(ctx context.Context, userID, displayName string) (*models.User, error) {
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		res, err := tx.NewRaw(`UPDATE users SET display_name = ? WHERE id = ?`, displayName, userID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("set display name: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errDirectoryNotFound()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.UserByID(ctx, userID)
}
