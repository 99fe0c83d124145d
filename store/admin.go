package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// UserSummary is a user as the admin's user list shows it.
type UserSummary struct {
	models.User
	Devices        int // not revoked
	ActiveSessions int
	LastSeenAt     *time.Time // latest use of any of their devices
}

// UserQuery pages through users in username order.
type UserQuery struct {
	// Search matches a part of the username or display name (any case).
	Search string
	// After is the username the previous page ended with.
	After string
	// Limit is the page size (1 to MaxUserPage; 0 means 50).
	Limit int
}

// MaxUserPage bounds one page of users.
const MaxUserPage = 200

type userSummaryRow struct {
	userRow
	Devices        int    `bun:"devices"`
	ActiveSessions int    `bun:"active_sessions"`
	LastSeenAt     *int64 `bun:"last_seen_at"`
}

func (r *userSummaryRow) summary() UserSummary {
	return UserSummary{User: *r.userRow.model(), Devices: r.Devices, ActiveSessions: r.ActiveSessions,
		LastSeenAt: models.FromMillisPtr(r.LastSeenAt)}
}

const userSummaryQuery = `SELECT u.id, u.username, u.display_name, u.role, u.webauthn_id, u.disabled_at, u.created_at,
  (SELECT count(*) FROM devices d WHERE d.user_id = u.id AND d.revoked_at IS NULL) AS devices,
  (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ?) AS active_sessions,
  (SELECT max(d.last_seen_at) FROM devices d WHERE d.user_id = u.id) AS last_seen_at
FROM users u`

// likePattern escapes s for LIKE ... ESCAPE '\' and wraps it in %.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ListUsers returns a page of users in username order and the cursor of
// the next page ("" on the last).
func (s *Store) ListUsers(ctx context.Context, q UserQuery) ([]UserSummary, string, error) {
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 1 || q.Limit > MaxUserPage {
		return nil, "", models.Errorf(models.EINVALID, "invalid_limit", "limit must be 1 to %d", MaxUserPage)
	}
	where, args := []string{"1 = 1"}, []any{models.Millis(s.now())}
	if q.Search != "" {
		p := likePattern(strings.ToLower(q.Search))
		where = append(where, `(u.username LIKE ? ESCAPE '\' OR lower(u.display_name) LIKE ? ESCAPE '\')`)
		args = append(args, p, p)
	}
	if q.After != "" {
		where, args = append(where, "u.username > ?"), append(args, q.After)
	}
	args = append(args, q.Limit+1)
	var rows []userSummaryRow
	err := s.rdb.NewRaw(userSummaryQuery+` WHERE `+strings.Join(where, " AND ")+` ORDER BY u.username LIMIT ?`, args...).Scan(ctx, &rows)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	next := ""
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		next = rows[len(rows)-1].Username
	}
	out := make([]UserSummary, len(rows))
	for i := range rows {
		out[i] = rows[i].summary()
	}
	return out, next, nil
}

// UserDetail is one user with their devices, active sessions and counts.
type UserDetail struct {
	UserSummary
	DeviceList []DeviceInfo
	Sessions   []SessionInfo
	Passkeys   int
	Groups     int // groups one of their devices is a member of now
}

// UserDetail reads everything the admin's user page shows.
func (s *Store) UserDetail(ctx context.Context, userID string) (*UserDetail, error) {
	var row userSummaryRow
	err := s.rdb.NewRaw(userSummaryQuery+` WHERE u.id = ?`, models.Millis(s.now()), userID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	d := &UserDetail{UserSummary: row.summary()}
	if d.DeviceList, err = s.DevicesByUser(ctx, userID); err != nil {
		return nil, err
	}
	if d.Sessions, err = s.ActiveSessions(ctx, userID); err != nil {
		return nil, err
	}
	err = s.rdb.NewRaw(`SELECT
  (SELECT count(*) FROM credentials WHERE user_id = ?),
  (SELECT count(DISTINCT m.group_id) FROM group_members m JOIN devices d ON d.id = m.device_id
   WHERE d.user_id = ? AND m.left_seq IS NULL)`, userID, userID).Scan(ctx, &d.Passkeys, &d.Groups)
	if err != nil {
		return nil, fmt.Errorf("count passkeys and groups: %w", err)
	}
	return d, nil
}

// adminTarget reads the user an admin acts on and refuses acting on
// oneself where that would lock the admin out.
func adminTarget(ctx context.Context, tx *Tx, actor models.Actor, userID string, notSelf bool) (*userRow, error) {
	var u userRow
	err := tx.NewRaw(`SELECT `+userCols+` FROM users WHERE id = ?`, userID).Scan(ctx, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if notSelf && u.ID == actor.UserID {
		return nil, models.Errorf(models.ECONFLICT, "self", "you cannot do this to your own account")
	}
	if notSelf && models.Role(u.Role) == models.RoleAdmin && u.DisabledAt == nil {
		var others int
		if err := tx.NewRaw(`SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL AND id <> ?`, u.ID).Scan(ctx, &others); err != nil {
			return nil, fmt.Errorf("count admins: %w", err)
		}
		if others == 0 {
			return nil, models.Errorf(models.ECONFLICT, "last_admin", "this is the last enabled admin")
		}
	}
	return &u, nil
}

func userAudit(actor models.Actor, action string, u *userRow, detail map[string]any) models.AuditEntry {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["username"] = u.Username
	return models.AuditEntry{Actor: actor, Action: action, TargetType: models.TargetUser, TargetID: u.ID, Detail: detail}
}

// DisableUser disables an account, as the threat model's compromise
// recovery asks: it can no longer sign in or use any session; every
// session ends at once and its open streams close (after commit); every
// device of the user leaves its groups, whose remaining members get a
// remove_device notice (reason user_disabled) asking them to commit the
// MLS removal; and the devices' key packages are deleted. Passkeys and
// devices stay, so EnableUser lets the user sign in again (members must add
// them back to groups). It returns how many sessions ended and how many
// groups the user left. Admins cannot disable themselves or the last
// enabled admin.
func (s *Store) DisableUser(ctx context.Context, actor models.Actor, userID string) (sessions, groups int, err error) {
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		sessions, groups = 0, 0
		u, err := adminTarget(ctx, tx, actor, userID, true)
		if err != nil {
			return err
		}
		if u.DisabledAt != nil {
			return nil
		}
		if _, err := tx.NewRaw(`UPDATE users SET disabled_at = ? WHERE id = ?`, models.Millis(tx.Now()), u.ID).Exec(ctx); err != nil {
			return fmt.Errorf("disable user: %w", err)
		}
		ids, err := endSessions(ctx, tx, s.pub, `user_id = ?`, u.ID)
		if err != nil {
			return err
		}
		if groups, err = activeGroupCount(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := RecoverDisabledUser(ctx, tx, u.ID); err != nil {
			return err
		}
		sessions = len(ids)
		return AppendAudit(ctx, tx, userAudit(actor, models.AuditUserDisable, u, map[string]any{"sessions_revoked": sessions, "groups": groups}))
	})
	return sessions, groups, err
}

// EnableUser lifts a suspension. Enabling an enabled user changes nothing.
func (s *Store) EnableUser(ctx context.Context, actor models.Actor, userID string) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := adminTarget(ctx, tx, actor, userID, false)
		if err != nil {
			return err
		}
		if u.DisabledAt == nil {
			return nil
		}
		if _, err := tx.NewRaw(`UPDATE users SET disabled_at = NULL WHERE id = ?`, u.ID).Exec(ctx); err != nil {
			return fmt.Errorf("enable user: %w", err)
		}
		return AppendAudit(ctx, tx, userAudit(actor, models.AuditUserEnable, u, nil))
	})
}

// RevokeUserSessions ends every session of a user on every device (their
// open streams close after commit) and returns how many. The devices stay
// and may sign in again with a passkey.
func (s *Store) RevokeUserSessions(ctx context.Context, actor models.Actor, userID string) (int, error) {
	var n int
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := adminTarget(ctx, tx, actor, userID, false)
		if err != nil {
			return err
		}
		ids, err := endSessions(ctx, tx, s.pub, `user_id = ? AND expires_at > ?`, u.ID, models.Millis(tx.Now()))
		if err != nil {
			return err
		}
		n = len(ids)
		return AppendAudit(ctx, tx, userAudit(actor, models.AuditUserRevokeSessions, u, map[string]any{"sessions_revoked": n}))
	})
	return n, err
}

// activeGroupCount counts the groups a user's devices are members of.
func activeGroupCount(ctx context.Context, tx *Tx, userID string) (int, error) {
	var n int
	err := tx.NewRaw(`SELECT count(DISTINCT m.group_id) FROM group_members m JOIN devices d ON d.id = m.device_id
WHERE d.user_id = ? AND m.left_seq IS NULL`, userID).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("count groups: %w", err)
	}
	return n, nil
}

// RemoveUserFromGroups removes every device of a user from every group:
// routing to them stops at once and each group gets a notice asking its
// remaining members to commit the MLS removal (the server cannot). It
// returns how many groups the user was in.
func (s *Store) RemoveUserFromGroups(ctx context.Context, actor models.Actor, userID string) (int, error) {
	var n int
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := adminTarget(ctx, tx, actor, userID, false)
		if err != nil {
			return err
		}
		if n, err = activeGroupCount(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := removeUserDevicesFromGroups(ctx, tx, u.ID, ReasonRemovedByAdmin); err != nil {
			return err
		}
		return AppendAudit(ctx, tx, userAudit(actor, models.AuditUserRemoveGroups, u, map[string]any{"groups": n}))
	})
	return n, err
}

// DeleteUser deletes an account and everything that belongs to it: its
// devices leave their groups first (with notices to the remaining members),
// its sessions end (streams close), and the user row goes with its
// passkeys, devices, sessions, key packages, memberships, cursors and
// device-addressed events (ON DELETE CASCADE). Group messages its devices
// sent stay: they belong to the groups' histories. Invites it created stay,
// unattributed. Admins cannot delete themselves or the last enabled admin.
// An admin's request over HTTP presents a step-up grant for delete_user and
// this user (su), taken in the same use case; su is nil only for callers on
// the host, which is full trust already.
func (s *Store) DeleteUser(ctx context.Context, actor models.Actor, userID string, su *StepUpCheck) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		return s.deleteAccount(ctx, tx, actor, actor, userID, models.AuditUserDelete, su)
	})
}

// deleteAccount is the one deletion of an account, by an admin (DeleteUser)
// or by its user (DeleteOwnAccount): check is the actor whose admin rights
// adminTarget checks (zero for the user's own deletion), actor the one the
// audit entry names, action its audit action.
func (s *Store) deleteAccount(ctx context.Context, tx *Tx, check, actor models.Actor, userID, action string, su *StepUpCheck) error {
	u, err := adminTarget(ctx, tx, check, userID, true)
	if err != nil {
		return err
	}
	detail := map[string]any{}
	if err := takeAdminStepUp(ctx, tx, su, detail); err != nil {
		return err
	}
	groups, err := activeGroupCount(ctx, tx, u.ID)
	if err != nil {
		return err
	}
	if err := removeUserDevicesFromGroups(ctx, tx, u.ID, ReasonUserDeleted); err != nil {
		return err
	}
	ids, err := endSessions(ctx, tx, s.pub, `user_id = ?`, u.ID)
	if err != nil {
		return err
	}
	var devices, passkeys int
	if err := tx.NewRaw(`SELECT (SELECT count(*) FROM devices WHERE user_id = ?), (SELECT count(*) FROM credentials WHERE user_id = ?)`,
		u.ID, u.ID).Scan(ctx, &devices, &passkeys); err != nil {
		return fmt.Errorf("count user's things: %w", err)
	}
	// The events addressed to its devices (Welcomes, notices) would go by
	// ON DELETE CASCADE; deleting them here gives their bytes, and a stored
	// Welcome no other device points at, back to their groups.
	var addressed []int64
	if err := tx.NewRaw(`SELECT e.seq FROM events e JOIN devices d ON d.id = e.recipient_device_id WHERE d.user_id = ?`,
		u.ID).Scan(ctx, &addressed); err != nil {
		return fmt.Errorf("list events addressed to the user: %w", err)
	}
	if _, err := DeleteEvents(ctx, tx, addressed); err != nil {
		return err
	}
	if _, err := tx.NewRaw(`DELETE FROM users WHERE id = ?`, u.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	detail["role"], detail["devices"], detail["passkeys"], detail["groups"], detail["sessions_revoked"] = u.Role, devices, passkeys, groups, len(ids)
	return AppendAudit(ctx, tx, userAudit(actor, action, u, detail))
}
