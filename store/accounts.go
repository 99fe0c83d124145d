package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/models"
)

type userRow struct {
	ID          string `bun:"id"`
	Username    string `bun:"username"`
	DisplayName string `bun:"display_name"`
	Role        string `bun:"role"`
	WebAuthnID  []byte `bun:"webauthn_id"`
	DisabledAt  *int64 `bun:"disabled_at"`
	CreatedAt   int64  `bun:"created_at"`
}

func (r *userRow) model() *models.User {
	return &models.User{ID: r.ID, Username: r.Username, DisplayName: r.DisplayName, Role: models.Role(r.Role),
		WebAuthnID: r.WebAuthnID, DisabledAt: models.FromMillisPtr(r.DisabledAt), CreatedAt: models.FromMillis(r.CreatedAt)}
}

const userCols = `id, username, display_name, role, webauthn_id, disabled_at, created_at`

func (s *Store) userWhere(ctx context.Context, where string, arg any) (*models.User, error) {
	var row userRow
	err := s.rdb.NewRaw(`SELECT `+userCols+` FROM users WHERE `+where, arg).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, models.Errorf(models.ENOTFOUND, "user_not_found", "no such user")
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	return row.model(), nil
}

// UserByID returns a user.
func (s *Store) UserByID(ctx context.Context, id string) (*models.User, error) {
	return s.userWhere(ctx, `id = ?`, id)
}

// UserByUsername returns a user by case-folded username.
func (s *Store) UserByUsername(ctx context.Context, username string) (*models.User, error) {
	return s.userWhere(ctx, `username = ?`, username)
}

// UserByHandle returns the user a WebAuthn user handle belongs to.
func (s *Store) UserByHandle(ctx context.Context, handle []byte) (*models.User, error) {
	return s.userWhere(ctx, `webauthn_id = ?`, handle)
}

// UsernameTaken reports whether a case-folded username is in use.
func (s *Store) UsernameTaken(ctx context.Context, username string) (bool, error) {
	var n int
	if err := s.rdb.NewRaw(`SELECT count(*) FROM users WHERE username = ?`, username).Scan(ctx, &n); err != nil {
		return false, fmt.Errorf("check username: %w", err)
	}
	return n > 0, nil
}

type credentialRow struct {
	ID                string `bun:"id"`
	CredentialID      []byte `bun:"credential_id"`
	UserID            string `bun:"user_id"`
	Name              string `bun:"name"`
	PublicKey         []byte `bun:"public_key"`
	AttestationType   string `bun:"attestation_type"`
	AttestationFormat string `bun:"attestation_format"`
	Transports        string `bun:"transports"`
	Attachment        string `bun:"attachment"`
	Flags             int64  `bun:"flags"`
	AAGUID            []byte `bun:"aaguid"`
	SignCount         int64  `bun:"sign_count"`
	CloneWarning      bool   `bun:"clone_warning"`
	CloneDetectedAt   *int64 `bun:"clone_detected_at"`
	CreatedAt         int64  `bun:"created_at"`
	LastUsedAt        *int64 `bun:"last_used_at"`
	approvalCols
}

// approvalCols are a passkey's approval and recovered flag.
type approvalCols struct {
	ByCredentialID    []byte `bun:"approval_by_credential_id"`
	Nonce             []byte `bun:"approval_nonce"`
	AuthenticatorData []byte `bun:"approval_authenticator_data"`
	ClientDataJSON    []byte `bun:"approval_client_data_json"`
	Signature         []byte `bun:"approval_signature"`
	Recovered         bool   `bun:"recovered"`
}

func (a *approvalCols) assertion() *models.Assertion {
	if a.ByCredentialID == nil {
		return nil
	}
	return &models.Assertion{CredentialID: a.ByCredentialID, Nonce: a.Nonce, AuthenticatorData: a.AuthenticatorData,
		ClientDataJSON: a.ClientDataJSON, Signature: a.Signature}
}

const credentialCols = `id, credential_id, user_id, name, public_key, attestation_type, attestation_format, transports,
attachment, flags, aaguid, sign_count, clone_warning, clone_detected_at, created_at, last_used_at,
approval_by_credential_id, approval_nonce, approval_authenticator_data, approval_client_data_json, approval_signature, recovered`

func (r *credentialRow) model() models.Credential {
	var transports []string
	_ = json.Unmarshal([]byte(r.Transports), &transports)
	return models.Credential{ID: r.ID, CredentialID: r.CredentialID, UserID: r.UserID, Name: r.Name, PublicKey: r.PublicKey,
		AttestationType: r.AttestationType, AttestationFormat: r.AttestationFormat, Transports: transports,
		Attachment: r.Attachment, Flags: uint8(r.Flags), AAGUID: r.AAGUID, SignCount: uint32(r.SignCount),
		CloneWarning: r.CloneWarning, CloneDetectedAt: models.FromMillisPtr(r.CloneDetectedAt),
		CreatedAt: models.FromMillis(r.CreatedAt), LastUsedAt: models.FromMillisPtr(r.LastUsedAt),
		Approval: r.assertion(), Recovered: r.approvalCols.Recovered}
}

// CredentialsByUser returns a user's passkeys, oldest first.
func (s *Store) CredentialsByUser(ctx context.Context, userID string) ([]models.Credential, error) {
	var rows []credentialRow
	if err := s.rdb.NewRaw(`SELECT `+credentialCols+` FROM credentials WHERE user_id = ? ORDER BY created_at, id`, userID).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	out := make([]models.Credential, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

func insertCredential(ctx context.Context, tx *Tx, userID string, c *models.Credential) error {
	c.ID = uuid.Must(uuid.NewV7()).String()
	c.UserID = userID
	c.CreatedAt = tx.Now()
	transports, err := json.Marshal(append([]string{}, c.Transports...))
	if err != nil {
		return fmt.Errorf("encode transports: %w", err)
	}
	a := c.Approval
	if a == nil {
		a = &models.Assertion{}
	}
	recovered := 0
	if c.Recovered {
		recovered = 1
	}
	_, err = tx.NewRaw(`INSERT INTO credentials (id, credential_id, user_id, name, public_key, attestation_type, attestation_format,
transports, attachment, flags, aaguid, sign_count, clone_warning, created_at,
approval_by_credential_id, approval_nonce, approval_authenticator_data, approval_client_data_json, approval_signature, recovered)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.CredentialID, userID, c.Name, c.PublicKey, c.AttestationType, c.AttestationFormat,
		string(transports), c.Attachment, int64(c.Flags), c.AAGUID, int64(c.SignCount), models.Millis(c.CreatedAt),
		a.CredentialID, a.Nonce, a.AuthenticatorData, a.ClientDataJSON, a.Signature, recovered).Exec(ctx)
	if err != nil {
		if isUniqueViolation(err) {
			return models.Errorf(models.ECONFLICT, "passkey_exists", "this passkey is already registered")
		}
		return fmt.Errorf("insert credential: %w", err)
	}
	return nil
}

// SignIn is the result of a completed ceremony that opened a session.
type SignIn struct {
	User      *models.User
	DeviceID  string
	SessionID string
	ExpiresAt time.Time
	// PasskeyID is the passkey registered (registration) or used (login).
	PasskeyID string
}

// Registration is a verified registration ceremony to commit.
type Registration struct {
	// InviteHash is the SHA-256 of the invite code; nil in open registration.
	InviteHash  []byte
	Username    string // case-folded and validated
	DisplayName string
	Handle      []byte // the WebAuthn user handle the passkey was made for
	Credential  models.Credential
	DeviceName  string
	TokenHash   []byte
	SessionTTL  time.Duration
	// ClientIP is recorded in the audit log.
	ClientIP string
}

// Register creates, in one use case, the user, their first passkey, a
// device and a session, taking one use of the invite. Without an invite
// (open registration) the user is a member.
func (s *Store) Register(ctx context.Context, r Registration) (*SignIn, error) {
	var out *SignIn
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		role := models.RoleMember
		if r.InviteHash != nil {
			var err error
			if role, err = takeInviteUse(ctx, tx, r.InviteHash); err != nil {
				return err
			}
		}
		userID, err := insertUserWithHandle(ctx, tx, r.Username, r.DisplayName, role, r.Handle)
		if err != nil {
			return err
		}
		cred := r.Credential
		if err := insertCredential(ctx, tx, userID, &cred); err != nil {
			return err
		}
		deviceID, err := InsertDevice(ctx, tx, userID, r.DeviceName)
		if err != nil {
			return err
		}
		sessionID, err := InsertSession(ctx, tx, userID, deviceID, r.TokenHash, r.SessionTTL)
		if err != nil {
			return err
		}
		out = &SignIn{
			User: &models.User{ID: userID, Username: r.Username, DisplayName: r.DisplayName, Role: role,
				WebAuthnID: r.Handle, CreatedAt: tx.Now()},
			DeviceID: deviceID, SessionID: sessionID, ExpiresAt: tx.Now().Add(r.SessionTTL), PasskeyID: cred.ID,
		}
		return AppendAudit(ctx, tx, models.AuditEntry{
			Actor:  models.Actor{UserID: userID, Username: r.Username, DeviceID: deviceID, IP: r.ClientIP},
			Action: models.AuditUserRegistered, TargetType: models.TargetUser, TargetID: userID,
			Detail: map[string]any{"username": r.Username, "role": string(role), "with_invite": r.InviteHash != nil},
		})
	})
	return out, err
}

// Login is a verified login ceremony to commit.
type Login struct {
	UserID    string
	PasskeyID string // credentials.id of the passkey used
	// SignCount and Flags are the values of this assertion.
	SignCount uint32
	Flags     uint8
	// DeviceID names one of the user's own devices to sign in again; when
	// empty a new device named DeviceName is created.
	DeviceID   string
	DeviceName string
	TokenHash  []byte
	SessionTTL time.Duration
	// ClientIP is recorded in the audit log when an admin signs in.
	ClientIP string
	// Location is the client address's coarse location for the new_device
	// notice of a new device (nil: none, e.g. without --geoip-db).
	Location *models.Location
	// Binding, when set, binds the device's signature key to this login's
	// assertion (a bound ceremony): a new device gets Binding.DeviceID, the
	// id allocated when the ceremony began; an existing one (DeviceID set)
	// must be that device.
	Binding *DeviceBinding
}

// DeviceBinding is a device signature key and the passkey assertion over
// its binding challenge, as the client sent it.
type DeviceBinding struct {
	DeviceID     string
	SignatureKey []byte
	Assertion    models.Assertion
}

// ErrCloneDetected is returned when a passkey's signature counter did not
// increase: the passkey may have been copied.
var ErrCloneDetected = models.Errorf(models.EFORBIDDEN, "passkey_clone_detected",
	"this passkey's signature counter went backwards, so it may have been copied; it is blocked: sign in with another passkey and delete this one")

// CompleteLogin records a verified assertion and opens a session, in one
// use case: the passkey's counter, flags and last use are written back only
// if the counter still increases (so two racing assertions with one counter
// cannot both win), the user must be enabled, and the device must be the
// user's own and not revoked (or a new one is created).
func (s *Store) CompleteLogin(ctx context.Context, l Login) (*SignIn, error) {
	var out *SignIn
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		now := models.Millis(tx.Now())
		var urow userRow
		if err := tx.NewRaw(`SELECT `+userCols+` FROM users WHERE id = ?`, l.UserID).Scan(ctx, &urow); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return models.Errorf(models.EUNAUTHORIZED, "unknown_passkey", "this passkey is not registered here")
			}
			return fmt.Errorf("read user: %w", err)
		}
		if urow.DisabledAt != nil {
			return models.Errorf(models.EFORBIDDEN, "account_disabled", "this account is disabled")
		}
		if err := useCredential(ctx, tx, l.UserID, l.PasskeyID, l.SignCount, l.Flags); err != nil {
			return err
		}
		deviceID := l.DeviceID
		if deviceID != "" {
			var revoked sql.NullInt64
			err := tx.NewRaw(`SELECT revoked_at FROM devices WHERE id = ? AND user_id = ?`, deviceID, l.UserID).Scan(ctx, &revoked)
			if errors.Is(err, sql.ErrNoRows) {
				return models.Errorf(models.ENOTFOUND, "device_not_found", "you have no device with this id")
			}
			if err != nil {
				return fmt.Errorf("read device: %w", err)
			}
			if revoked.Valid {
				return models.Errorf(models.EFORBIDDEN, "device_revoked", "this device was revoked and can never sign in again")
			}
		} else {
			// A new device must fit the account's device cap.
			if err := s.checkDeviceCap(ctx, tx, l.UserID); err != nil {
				return err
			}
			if l.Binding != nil {
				deviceID = l.Binding.DeviceID
				if err := insertDeviceID(ctx, tx, deviceID, l.UserID, l.DeviceName); err != nil {
					return err
				}
			} else {
				var err error
				if deviceID, err = InsertDevice(ctx, tx, l.UserID, l.DeviceName); err != nil {
					return err
				}
			}
			if err := notifyNewDevice(ctx, tx, l.UserID, deviceID, l.DeviceName, l.Location); err != nil {
				return err
			}
		}
		if l.Binding != nil {
			if deviceID != l.Binding.DeviceID {
				return ErrBindingDevice
			}
			if err := setDeviceBinding(ctx, tx, deviceID, l.Binding); err != nil {
				return err
			}
		}
		sessionID, err := InsertSession(ctx, tx, l.UserID, deviceID, l.TokenHash, l.SessionTTL)
		if err != nil {
			return err
		}
		if _, err := tx.NewRaw(`UPDATE devices SET last_seen_at = ? WHERE id = ?`, now, deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("touch device: %w", err)
		}
		out = &SignIn{User: urow.model(), DeviceID: deviceID, SessionID: sessionID,
			ExpiresAt: tx.Now().Add(l.SessionTTL), PasskeyID: l.PasskeyID}
		if models.Role(urow.Role) == models.RoleAdmin {
			return AppendAudit(ctx, tx, models.AuditEntry{
				Actor:  models.Actor{UserID: urow.ID, Username: urow.Username, DeviceID: deviceID, IP: l.ClientIP},
				Action: models.AuditAdminSignIn, TargetType: models.TargetSession, TargetID: sessionID,
				Detail: map[string]any{"passkey_id": l.PasskeyID, "new_device": l.DeviceID == ""},
			})
		}
		return nil
	})
	return out, err
}

// MarkCredentialCloned records that a passkey presented a signature counter
// that did not increase. The passkey is blocked from then on: go-webauthn
// only flags this, so a login that sees the flag must fail and call this.
// The audit entry ev (action auth.clone_warning) is recorded with it.
func (s *Store) MarkCredentialCloned(ctx context.Context, passkeyID string, ev models.AuditEntry) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.NewRaw(`UPDATE credentials SET clone_warning = 1, clone_detected_at = coalesce(clone_detected_at, ?) WHERE id = ?`,
			models.Millis(tx.Now()), passkeyID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("mark credential cloned: %w", err)
		}
		return AppendAudit(ctx, tx, ev)
	})
}

// RenameCredential renames one of the user's passkeys.
func (s *Store) RenameCredential(ctx context.Context, userID, passkeyID, name string) (*models.Credential, error) {
	var out models.Credential
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var row credentialRow
		err := tx.NewRaw(`UPDATE credentials SET name = ? WHERE id = ? AND user_id = ? RETURNING `+credentialCols, name, passkeyID, userID).Scan(ctx, &row)
		if errors.Is(err, sql.ErrNoRows) {
			return errPasskeyNotFound
		}
		if err != nil {
			return fmt.Errorf("rename credential: %w", err)
		}
		out = row.model()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

var errPasskeyNotFound = models.Errorf(models.ENOTFOUND, "passkey_not_found", "you have no passkey with this id")
