package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// DeviceInfo is a device with its count of active sessions.
type DeviceInfo struct {
	models.Device
	ActiveSessions int
	// Push is true when the device has a Web Push subscription.
	Push bool
}

// SessionInfo is an active session with the name of its device.
type SessionInfo struct {
	models.Session
	DeviceName string
}

type deviceRow struct {
	ID         string `bun:"id"`
	UserID     string `bun:"user_id"`
	Name       string `bun:"name"`
	CreatedAt  int64  `bun:"created_at"`
	LastSeenAt *int64 `bun:"last_seen_at"`
	RevokedAt  *int64 `bun:"revoked_at"`
	Active     int    `bun:"active"`
	Push       bool   `bun:"push"`
	bindingCols
}

func (r *deviceRow) model() DeviceInfo {
	return DeviceInfo{Device: models.Device{ID: r.ID, UserID: r.UserID, Name: r.Name, CreatedAt: models.FromMillis(r.CreatedAt),
		LastSeenAt: models.FromMillisPtr(r.LastSeenAt), RevokedAt: models.FromMillisPtr(r.RevokedAt),
		SignatureKey: r.SignatureKey, Binding: r.binding()}, ActiveSessions: r.Active, Push: r.Push}
}

const deviceQuery = `SELECT d.id, d.user_id, d.name, d.created_at, d.last_seen_at, d.revoked_at, ` + bindingSelect + `,
  (SELECT count(*) FROM sessions s WHERE s.device_id = d.id AND s.revoked_at IS NULL AND s.expires_at > ?) AS active,
  EXISTS (SELECT 1 FROM push_subscriptions p WHERE p.device_id = d.id) AS push
FROM devices d`

// DevicesByUser lists a user's devices, revoked ones included, oldest first.
func (s *Store) DevicesByUser(ctx context.Context, userID string) ([]DeviceInfo, error) {
	var rows []deviceRow
	if err := s.rdb.NewRaw(deviceQuery+` WHERE d.user_id = ? ORDER BY d.created_at, d.id`, models.Millis(s.now()), userID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	out := make([]DeviceInfo, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// DeviceByID returns one device of a user.
func (s *Store) DeviceByID(ctx context.Context, userID, deviceID string) (*DeviceInfo, error) {
	var row deviceRow
	err := s.rdb.NewRaw(deviceQuery+` WHERE d.id = ? AND d.user_id = ?`, models.Millis(s.now()), deviceID, userID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errDeviceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read device: %w", err)
	}
	d := row.model()
	return &d, nil
}

var errDeviceNotFound = models.Errorf(models.ENOTFOUND, "device_not_found", "you have no device with this id")

type sessionRow struct {
	ID         string `bun:"id"`
	UserID     string `bun:"user_id"`
	DeviceID   string `bun:"device_id"`
	DeviceName string `bun:"device_name"`
	CreatedAt  int64  `bun:"created_at"`
	ExpiresAt  int64  `bun:"expires_at"`
	LastSeenAt int64  `bun:"last_seen_at"`
}

// ActiveSessions lists a user's sessions that are neither revoked nor
// expired (on revoked devices there are none), newest first.
func (s *Store) ActiveSessions(ctx context.Context, userID string) ([]SessionInfo, error) {
	var rows []sessionRow
	err := s.rdb.NewRaw(`SELECT s.id, s.user_id, s.device_id, d.name AS device_name, s.created_at, s.expires_at, s.last_seen_at
FROM sessions s JOIN devices d ON d.id = s.device_id
WHERE s.user_id = ? AND s.revoked_at IS NULL AND d.revoked_at IS NULL AND s.expires_at > ?
ORDER BY s.created_at DESC, s.id DESC`, userID, models.Millis(s.now())).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	out := make([]SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = SessionInfo{Session: models.Session{ID: r.ID, UserID: r.UserID, DeviceID: r.DeviceID,
			CreatedAt: models.FromMillis(r.CreatedAt), ExpiresAt: models.FromMillis(r.ExpiresAt),
			LastSeenAt: models.FromMillis(r.LastSeenAt)}, DeviceName: r.DeviceName}
	}
	return out, nil
}

// endSessions revokes the sessions a WHERE clause selects and, once
// committed, tells the publisher so their live streams close at once.
func endSessions(ctx context.Context, tx *Tx, pub models.Publisher, where string, args ...any) ([]string, error) {
	var ids []string
	q := `UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND ` + where + ` RETURNING id`
	if err := tx.NewRaw(q, append([]any{models.Millis(tx.Now())}, args...)...).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("end sessions: %w", err)
	}
	if len(ids) > 0 {
		tx.w.noteSessions(ids)
		tx.AfterCommit(func() { pub.SessionsEnded(ids) })
	}
	return ids, nil
}

// EndSession ends one of the user's sessions (logging out if it is the
// current one). The device stays and may sign in again.
func (s *Store) EndSession(ctx context.Context, userID, sessionID string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var n int
		if err := tx.NewRaw(`SELECT count(*) FROM sessions WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`,
			sessionID, userID, models.Millis(tx.Now())).Scan(ctx, &n); err != nil {
			return fmt.Errorf("read session: %w", err)
		}
		if n == 0 {
			return models.Errorf(models.ENOTFOUND, "session_not_found", "you have no active session with this id")
		}
		_, err := endSessions(ctx, tx, s.pub, `id = ? AND user_id = ?`, sessionID, userID)
		return err
	})
}

// RevokeDevice revokes a device of a user for good, for a lost or
// compromised phone: it marks devices.revoked_at, ends every session of the
// device (publishing SessionsEnded after commit so open streams close at
// once), and from then on the device can never sign in again (CompleteLogin
// refuses it) nor authenticate (Authenticate checks revoked_at).
//
// This is the one use case for device revocation: everything else that must
// happen when a device goes away belongs inside this transaction, so it
// happens all together or not at all. It calls RecoverRevokedDevice, which stops routing to the device,
// deletes its key packages and asks its groups to commit a Remove. Revoking
// an already revoked device changes nothing and succeeds.
func (s *Store) RevokeDevice(ctx context.Context, userID, deviceID string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var revoked sql.NullInt64
		err := tx.NewRaw(`SELECT revoked_at FROM devices WHERE id = ? AND user_id = ?`, deviceID, userID).Scan(ctx, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return errDeviceNotFound
		}
		if err != nil {
			return fmt.Errorf("read device: %w", err)
		}
		if revoked.Valid {
			return nil
		}
		if _, err := tx.NewRaw(`UPDATE devices SET revoked_at = ? WHERE id = ?`, models.Millis(tx.Now()), deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
		if _, err = endSessions(ctx, tx, s.pub, `device_id = ?`, deviceID); err != nil {
			return err
		}
		// Compromise recovery in the same transaction: routing stops, its
		// key packages go, and its groups are asked to commit a Remove.
		return RecoverRevokedDevice(ctx, tx, deviceID)
	})
}

// SessionByID returns one session (for GET /v1/me).
func (s *Store) SessionByID(ctx context.Context, sessionID string) (*models.Session, error) {
	var r sessionRow
	err := s.rdb.NewRaw(`SELECT s.id, s.user_id, s.device_id, d.name AS device_name, s.created_at, s.expires_at, s.last_seen_at
FROM sessions s JOIN devices d ON d.id = s.device_id WHERE s.id = ?`, sessionID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrSessionInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	return &models.Session{ID: r.ID, UserID: r.UserID, DeviceID: r.DeviceID, CreatedAt: models.FromMillis(r.CreatedAt),
		ExpiresAt: models.FromMillis(r.ExpiresAt), LastSeenAt: models.FromMillis(r.LastSeenAt)}, nil
}
