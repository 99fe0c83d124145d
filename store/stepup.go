package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// ErrStepUpRequired answers an account change made without a valid step-up
// grant: missing, unknown, expired, already used, or made for another
// operation, target, session or user. Callers must not tell these apart.
var ErrStepUpRequired = models.Errorf(models.EFORBIDDEN, "step_up_required",
	"this change needs a fresh passkey check: run the step-up ceremony for it and send its grant in the Sovereign-Step-Up header")

// StepUpHeader carries a step-up grant.
const StepUpHeader = "Sovereign-Step-Up"

// StepUp is a verified step-up assertion to commit as a grant.
type StepUp struct {
	UserID    string
	SessionID string
	// PasskeyID is the passkey that made the assertion; SignCount and Flags
	// are the assertion's values, written back as a login does.
	PasskeyID string
	SignCount uint32
	Flags     uint8
	Operation models.StepUpOperation
	// Target is the passkey id of a delete_passkey grant, the user id of a
	// recovery_invite or delete_user grant, else empty.
	Target    string
	TokenHash []byte
	TTL       time.Duration
}

// stepUpPayload is what a step_up ceremony and its grant remember.
type stepUpPayload struct {
	Operation models.StepUpOperation `json:"operation"`
	Target    string                 `json:"target,omitempty"`
	SessionID string                 `json:"session_id"`
	PasskeyID string                 `json:"passkey_id,omitempty"`
}

// StepUpCeremonyPayload encodes what a step_up ceremony remembers.
func StepUpCeremonyPayload(op models.StepUpOperation, target, sessionID string) []byte {
	b, _ := json.Marshal(stepUpPayload{Operation: op, Target: target, SessionID: sessionID})
	return b
}

// ParseStepUpCeremony decodes a step_up ceremony's payload.
func ParseStepUpCeremony(b []byte) (op models.StepUpOperation, target, sessionID string, err error) {
	var p stepUpPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return "", "", "", fmt.Errorf("decode step-up payload: %w", err)
	}
	return p.Operation, p.Target, p.SessionID, nil
}

func grantID(tokenHash []byte) string { return base64.RawURLEncoding.EncodeToString(tokenHash) }

// CompleteStepUp records a verified step-up assertion (the passkey's
// counter, flags and last use are written back only while the counter
// increases, as at login) and stores a single-use grant for the operation,
// bound to the user, the session and the target, for TTL. It returns when
// the grant expires.
func (s *Store) CompleteStepUp(ctx context.Context, su StepUp) (time.Time, error) {
	var expires time.Time
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		now := tx.Now()
		var disabled sql.NullInt64
		if err := tx.NewRaw(`SELECT disabled_at FROM users WHERE id = ?`, su.UserID).Scan(ctx, &disabled); err != nil {
			return fmt.Errorf("read user: %w", err)
		}
		if disabled.Valid {
			return models.Errorf(models.EFORBIDDEN, "account_disabled", "this account is disabled")
		}
		res, err := tx.NewRaw(`UPDATE credentials SET sign_count = ?, flags = ?, last_used_at = ?
WHERE id = ? AND user_id = ? AND clone_warning = 0 AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
			int64(su.SignCount), int64(su.Flags), models.Millis(now), su.PasskeyID, su.UserID, int64(su.SignCount), int64(su.SignCount)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("update credential: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrCloneDetected
		}
		payload, err := json.Marshal(stepUpPayload{Operation: su.Operation, Target: su.Target, SessionID: su.SessionID, PasskeyID: su.PasskeyID})
		if err != nil {
			return fmt.Errorf("encode step-up grant: %w", err)
		}
		expires = now.Add(su.TTL)
		_, err = tx.NewRaw(`INSERT INTO ceremonies (id, kind, user_id, session_data, payload, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			grantID(su.TokenHash), string(models.CeremonyStepUpGrant), su.UserID, []byte("{}"), payload,
			models.Millis(now), models.Millis(expires)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("insert step-up grant: %w", err)
		}
		return nil
	})
	return expires, err
}

// StepUpCheck names the grant an account change presents and what it must
// have been made for.
type StepUpCheck struct {
	// Token is the grant as the client sent it (empty: none).
	Token     string
	UserID    string
	SessionID string
	Operation models.StepUpOperation
	Target    string
}

// takeStepUp consumes a step-up grant inside the use case of the change it
// allows (so a change that fails leaves the grant unused) and returns the
// passkey that made the step-up. Any mismatch is ErrStepUpRequired.
func takeStepUp(ctx context.Context, tx *Tx, c StepUpCheck) (string, error) {
	if c.Token == "" || len(c.Token) > 128 {
		return "", ErrStepUpRequired
	}
	h := sha256.Sum256([]byte(c.Token))
	var row struct {
		Kind      string         `bun:"kind"`
		UserID    sql.NullString `bun:"user_id"`
		Payload   []byte         `bun:"payload"`
		ExpiresAt int64          `bun:"expires_at"`
	}
	err := tx.NewRaw(`DELETE FROM ceremonies WHERE id = ? RETURNING kind, user_id, payload, expires_at`, grantID(h[:])).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrStepUpRequired
	}
	if err != nil {
		return "", fmt.Errorf("take step-up grant: %w", err)
	}
	var p stepUpPayload
	if err := json.Unmarshal(row.Payload, &p); err != nil {
		return "", ErrStepUpRequired
	}
	if row.Kind != string(models.CeremonyStepUpGrant) || row.UserID.String != c.UserID || p.SessionID != c.SessionID ||
		p.Operation != c.Operation || p.Target != c.Target || row.ExpiresAt <= models.Millis(tx.Now()) {
		// The row is deleted all the same: a grant is tried once.
		return "", ErrStepUpRequired
	}
	return p.PasskeyID, nil
}

// takeAdminStepUp takes an admin's step-up grant (su; nil: a caller on the
// host, which needs none) in the use case of the admin action it allows and
// notes the passkey that made it in the action's audit detail.
func takeAdminStepUp(ctx context.Context, tx *Tx, su *StepUpCheck, detail map[string]any) error {
	if su == nil {
		return nil
	}
	passkey, err := takeStepUp(ctx, tx, *su)
	if err != nil {
		return err
	}
	detail["step_up_passkey_id"] = passkey
	return nil
}

// TakeStepUp consumes a step-up grant on its own (for a change that is a
// ceremony of its own, adding a passkey: the grant is spent when the
// add-passkey ceremony begins).
func (s *Store) TakeStepUp(ctx context.Context, c StepUpCheck) error {
	refused := false
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		refused = false
		_, err := takeStepUp(ctx, tx, c)
		if errors.Is(err, ErrStepUpRequired) {
			// Commit the deletion of a mismatched grant, then refuse.
			refused = true
			return nil
		}
		return err
	})
	if err == nil && refused {
		return ErrStepUpRequired
	}
	return err
}

// notifyPasskeyChange posts a passkey notice to every device of the user
// that is not revoked, so a change made behind the owner's back shows on
// all of them.
func notifyPasskeyChange(ctx context.Context, tx *Tx, n models.PasskeyNotice) error {
	var devices []string
	if err := tx.NewRaw(`SELECT id FROM devices WHERE user_id = ? AND revoked_at IS NULL ORDER BY id`, n.UserID).Scan(ctx, &devices); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("list devices: %w", err)
	}
	for _, d := range devices {
		if _, err := AppendDeviceNotice(ctx, tx, d, n); err != nil {
			return err
		}
	}
	return nil
}

func passkeyAudit(actor models.Actor, action string, userID string, c *credentialRow, detail map[string]any) models.AuditEntry {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["user_id"] = userID
	detail["name"] = c.Name
	return models.AuditEntry{Actor: actor, Action: action, TargetType: models.TargetPasskey, TargetID: c.ID, Detail: detail}
}

// removeCredentials deletes the credentials a query selects (where, on
// credentials of userID) with an audit entry and a notice each, and
// returns how many.
func removeCredentials(ctx context.Context, tx *Tx, actor models.Actor, userID, reason string, where string, args ...any) (int, error) {
	var rows []credentialRow
	q := `DELETE FROM credentials WHERE user_id = ? AND ` + where + ` RETURNING ` + credentialCols
	if err := tx.NewRaw(q, append([]any{userID}, args...)...).Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("delete credentials: %w", err)
	}
	for i := range rows {
		if err := AppendAudit(ctx, tx, passkeyAudit(actor, models.AuditPasskeyRemoved, userID, &rows[i], map[string]any{"reason": reason})); err != nil {
			return 0, err
		}
		if err := notifyPasskeyChange(ctx, tx, models.PasskeyNotice{Type: models.NoticePasskeyRemoved, UserID: userID,
			PasskeyID: rows[i].ID, Name: rows[i].Name, ByDeviceID: actor.DeviceID, Reason: reason}); err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}

// EndOthers is an "end all my other sessions" request.
type EndOthers struct {
	Actor         models.Actor
	UserID        string
	KeepSessionID string
	StepUp        StepUpCheck
	// RemovePasskeysAddedAfter, when set, also deletes the passkeys added
	// after it (an attacker's, added with a stolen session), except the one
	// that made the step-up.
	RemovePasskeysAddedAfter *time.Time
}

// EndOtherSessions ends every session of the user except the current one,
// after a step-up, and optionally deletes the passkeys added after a time
// (never the one that made the step-up). It returns how many sessions ended
// and how many passkeys went. The change is audited; every passkey removed
// is announced to the user's devices.
func (s *Store) EndOtherSessions(ctx context.Context, r EndOthers) (ended, removed int, err error) {
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		ended, removed = 0, 0
		stepPasskey, err := takeStepUp(ctx, tx, r.StepUp)
		if err != nil {
			return err
		}
		ids, err := endSessions(ctx, tx, s.pub, `user_id = ? AND id <> ? AND expires_at > ?`, r.UserID, r.KeepSessionID, models.Millis(tx.Now()))
		if err != nil {
			return err
		}
		ended = len(ids)
		detail := map[string]any{"sessions_ended": ended}
		if r.RemovePasskeysAddedAfter != nil {
			if removed, err = removeCredentials(ctx, tx, r.Actor, r.UserID, "ended_sessions", `created_at > ? AND id <> ?`,
				models.Millis(*r.RemovePasskeysAddedAfter), stepPasskey); err != nil {
				return err
			}
			detail["passkeys_removed"] = removed
			detail["passkeys_added_after"] = r.RemovePasskeysAddedAfter.UTC().Format(time.RFC3339)
		}
		return AppendAudit(ctx, tx, models.AuditEntry{Actor: r.Actor, Action: models.AuditSessionsEnded,
			TargetType: models.TargetUser, TargetID: r.UserID, Detail: detail})
	})
	return ended, removed, err
}

// AddCredential registers another passkey for a signed-in user (whose
// add-passkey ceremony began after a step-up), audits it and announces it
// to every device of the user.
//
// c.Approval is the approval by an existing passkey of the user (verified
// by the caller); approver is that assertion's passkey use, written back
// like a login's (ErrCloneDetected when its counter did not increase).
func (s *Store) AddCredential(ctx context.Context, actor models.Actor, userID string, c models.Credential, approver CredentialUse) (*models.Credential, error) {
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if err := useCredential(ctx, tx, userID, approver.PasskeyID, approver.SignCount, approver.Flags); err != nil {
			return err
		}
		if err := insertCredential(ctx, tx, userID, &c); err != nil {
			return err
		}
		row := credentialRow{ID: c.ID, Name: c.Name}
		if err := AppendAudit(ctx, tx, passkeyAudit(actor, models.AuditPasskeyAdded, userID, &row, nil)); err != nil {
			return err
		}
		return notifyPasskeyChange(ctx, tx, models.PasskeyNotice{Type: models.NoticePasskeyAdded, UserID: userID,
			PasskeyID: c.ID, Name: c.Name, ByDeviceID: actor.DeviceID})
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteCredential deletes one of the user's passkeys after a step-up made
// for it, unless that would leave the user without a usable one (a passkey
// flagged as cloned is not usable), so nobody locks themselves out. It is
// audited and announced to every device of the user.
func (s *Store) DeleteCredential(ctx context.Context, actor models.Actor, userID, passkeyID string, su StepUpCheck) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var usableOthers, exists int
		if err := tx.NewRaw(`SELECT count(*) FROM credentials WHERE id = ? AND user_id = ?`, passkeyID, userID).Scan(ctx, &exists); err != nil {
			return fmt.Errorf("read credential: %w", err)
		}
		if exists == 0 {
			return errPasskeyNotFound
		}
		if _, err := takeStepUp(ctx, tx, su); err != nil {
			return err
		}
		if err := tx.NewRaw(`SELECT count(*) FROM credentials WHERE user_id = ? AND id <> ? AND clone_warning = 0`, userID, passkeyID).Scan(ctx, &usableOthers); err != nil {
			return fmt.Errorf("count credentials: %w", err)
		}
		if usableOthers == 0 {
			return models.Errorf(models.ECONFLICT, "last_passkey", "this is your last usable passkey: add another one before deleting it")
		}
		_, err := removeCredentials(ctx, tx, actor, userID, "deleted", `id = ?`, passkeyID)
		return err
	})
}

// Recovery is a verified registration made with a recovery invite.
type Recovery struct {
	InviteHash []byte
	UserID     string
	Credential models.Credential
	DeviceName string
	TokenHash  []byte
	SessionTTL time.Duration
	ClientIP   string
}

// RecoverAccount redeems a recovery invite, as the threat model's recovery
// steps ask: in one use case it takes the invite's use, deletes every
// passkey of the account, ends every session (open streams close), and
// registers the new passkey with a new device and session. Audited; the
// devices of the account are told of every passkey removed and added.
func (s *Store) RecoverAccount(ctx context.Context, r Recovery) (*SignIn, error) {
	var out *SignIn
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var target sql.NullString
		err := tx.NewRaw(`UPDATE invites SET uses_left = uses_left - 1
WHERE code_hash = ? AND uses_left > 0 AND expires_at > ? AND recovery_user_id IS NOT NULL RETURNING recovery_user_id`,
			r.InviteHash, models.Millis(tx.Now())).Scan(ctx, &target)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && target.String != r.UserID) {
			return ErrInviteInvalid
		}
		if err != nil {
			return fmt.Errorf("take recovery invite: %w", err)
		}
		var u userRow
		if err := tx.NewRaw(`SELECT `+userCols+` FROM users WHERE id = ?`, r.UserID).Scan(ctx, &u); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrInviteInvalid
			}
			return fmt.Errorf("read user: %w", err)
		}
		if u.DisabledAt != nil {
			return models.Errorf(models.EFORBIDDEN, "account_disabled", "this account is disabled: an admin must enable it first")
		}
		actor := models.Actor{UserID: u.ID, Username: u.Username, IP: r.ClientIP}
		removed, err := removeCredentials(ctx, tx, actor, u.ID, "recovery", `1 = 1`)
		if err != nil {
			return err
		}
		ids, err := endSessions(ctx, tx, s.pub, `user_id = ?`, u.ID)
		if err != nil {
			return err
		}
		// A recovery's passkey has no approval (the old passkeys are gone):
		// peers see an account reset.
		cred := r.Credential
		cred.Approval, cred.Recovered = nil, true
		if err := insertCredential(ctx, tx, u.ID, &cred); err != nil {
			return err
		}
		deviceID, err := InsertDevice(ctx, tx, u.ID, r.DeviceName)
		if err != nil {
			return err
		}
		actor.DeviceID = deviceID
		sessionID, err := InsertSession(ctx, tx, u.ID, deviceID, r.TokenHash, r.SessionTTL)
		if err != nil {
			return err
		}
		if err := AppendAudit(ctx, tx, passkeyAudit(actor, models.AuditPasskeyAdded, u.ID, &credentialRow{ID: cred.ID, Name: cred.Name},
			map[string]any{"reason": "recovery"})); err != nil {
			return err
		}
		if err := notifyPasskeyChange(ctx, tx, models.PasskeyNotice{Type: models.NoticePasskeyAdded, UserID: u.ID,
			PasskeyID: cred.ID, Name: cred.Name, ByDeviceID: deviceID, Reason: "recovery"}); err != nil {
			return err
		}
		out = &SignIn{User: u.model(), DeviceID: deviceID, SessionID: sessionID, ExpiresAt: tx.Now().Add(r.SessionTTL), PasskeyID: cred.ID}
		return AppendAudit(ctx, tx, models.AuditEntry{Actor: actor, Action: models.AuditUserRecovered, TargetType: models.TargetUser,
			TargetID: u.ID, Detail: map[string]any{"passkeys_removed": removed, "sessions_ended": len(ids)}})
	})
	return out, err
}

// CreateRecoveryInvite makes a one-use recovery invite for a user (an
// admin's action, audited): whoever redeems it registers a new passkey for
// that account, and the old passkeys and every session end then.
//
// The admin's step-up grant for recovery_invite and this user (su) is taken
// in the same use case; su is nil only for callers on the host.
func (s *Store) CreateRecoveryInvite(ctx context.Context, actor models.Actor, userID string, ttl time.Duration, su *StepUpCheck) (string, *models.Invite, error) {
	var (
		code string
		inv  *models.Invite
	)
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := adminTarget(ctx, tx, actor, userID, false)
		if err != nil {
			return err
		}
		detail := map[string]any{}
		if err := takeAdminStepUp(ctx, tx, su, detail); err != nil {
			return err
		}
		in := NewInvite{Role: models.Role(u.Role), CreatedBy: actor.UserID, TTL: ttl, Uses: 1}
		if err := validateInvite(in); err != nil {
			return err
		}
		if code, inv, err = insertInvite(ctx, tx, in); err != nil {
			return err
		}
		inv.RecoveryUserID = u.ID
		if _, err := tx.NewRaw(`UPDATE invites SET recovery_user_id = ? WHERE id = ?`, u.ID, inv.ID).Exec(ctx); err != nil {
			return fmt.Errorf("mark recovery invite: %w", err)
		}
		detail["invite_id"], detail["expires_at"] = inv.ID, inv.ExpiresAt.UTC().Format(time.RFC3339)
		return AppendAudit(ctx, tx, userAudit(actor, models.AuditRecoveryInvite, u, detail))
	})
	if err != nil {
		return "", nil, err
	}
	return code, inv, nil
}
