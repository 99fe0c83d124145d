package models

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
	"unicode/utf8"
)

// Credential is a passkey: a WebAuthn credential record of a user. Every
// field of go-webauthn's credential record is kept.
type Credential struct {
	ID                string // server UUID, the API's passkey id
	CredentialID      []byte // WebAuthn credential ID
	UserID            string
	Name              string
	PublicKey         []byte
	AttestationType   string
	AttestationFormat string
	Transports        []string
	Attachment        string
	Flags             uint8 // authenticator data flags, raw octet
	AAGUID            []byte
	SignCount         uint32
	CloneWarning      bool
	CloneDetectedAt   *time.Time
	CreatedAt         time.Time
	LastUsedAt        *time.Time
	// Approval is the assertion of an existing passkey of the user over
	// PasskeyApprovalChallenge for this one; nil for a registration's first
	// passkey and for a recovery's.
	Approval *Assertion
	// Recovered is set on a passkey made by an account recovery (an admin's
	// recovery invite): peers see an account reset.
	Recovered bool
}

// Authenticator data flag bits (WebAuthn §6.1).
const (
	FlagUserPresent    uint8 = 0x01
	FlagUserVerified   uint8 = 0x04
	FlagBackupEligible uint8 = 0x08
	FlagBackupState    uint8 = 0x10
)

// Invite is a registration invite. The code itself is never stored.
type Invite struct {
	ID        string
	Role      Role
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsesLeft  int
	// RecoveryUserID is set on a recovery invite: it resets that account's
	// passkeys instead of creating an account.
	RecoveryUserID string
}

// CeremonyKind says which WebAuthn ceremony a pending ceremony belongs to.
type CeremonyKind string

// Ceremony kinds.
const (
	CeremonyRegister   CeremonyKind = "register"
	CeremonyLogin      CeremonyKind = "login"
	CeremonyAddPasskey CeremonyKind = "add_passkey"
	// CeremonyStepUp is an assertion by an existing passkey of the signed-in
	// user, begun for one account change (StepUpOperation).
	CeremonyStepUp CeremonyKind = "step_up"
	// CeremonyStepUpGrant is what a finished step-up leaves: a single-use
	// grant for that change, stored under the SHA-256 of its token.
	CeremonyStepUpGrant CeremonyKind = "step_up_grant"
	// CeremonyRecover is a registration ceremony begun with a recovery
	// invite.
	CeremonyRecover CeremonyKind = "recover"
	// CeremonyBindDevice is an assertion over a device binding challenge by
	// a signed-in device (after registration, recovery, or a key change).
	CeremonyBindDevice CeremonyKind = "bind_device"
	// CeremonyApprovePasskey is an assertion by an existing passkey over
	// the approval challenge of a passkey being added.
	CeremonyApprovePasskey CeremonyKind = "approve_passkey"
)

// Ceremony is a pending WebAuthn ceremony held server-side between begin and
// finish. SessionData is go-webauthn's SessionData as JSON; Payload carries
// kind-specific details (JSON).
type Ceremony struct {
	ID          string
	Kind        CeremonyKind
	UserID      string
	SessionData []byte
	Payload     []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Username and name rules.
const (
	UsernameMinLen    = 3
	UsernameMaxLen    = 32
	UsernamePattern   = `^[a-zA-Z0-9._-]{3,32}$`
	DisplayNameMaxLen = 64
	DeviceNameMaxLen  = 64
	PasskeyNameMaxLen = 64
)

// NormalizeUsername case-folds a username and checks it: 3 to 32 characters
// of a-z, 0-9, '.', '_' and '-'.
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if len(u) < UsernameMinLen || len(u) > UsernameMaxLen {
		return "", Errorf(EINVALID, "invalid_username", "a username has %d to %d characters", UsernameMinLen, UsernameMaxLen)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", Errorf(EINVALID, "invalid_username", "a username may contain only a-z, 0-9, '.', '_' and '-'")
		}
	}
	return u, nil
}

// CleanName trims a human-readable name (display, device or passkey name)
// and checks that it has 1 to max characters and no control characters.
func CleanName(field, s string, max int) (string, error) {
	n := strings.TrimSpace(s)
	if n == "" || utf8.RuneCountInString(n) > max || !utf8.ValidString(n) {
		return "", Errorf(EINVALID, "invalid_"+field, "the %s must have 1 to %d characters", strings.ReplaceAll(field, "_", " "), max)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return "", Errorf(EINVALID, "invalid_"+field, "the %s must not contain control characters", strings.ReplaceAll(field, "_", " "))
		}
	}
	return n, nil
}

// InviteCodeBytes is the randomness of an invite code: 160 bits.
const InviteCodeBytes = 20

var inviteEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewInviteCode returns a fresh invite code, grouped for reading aloud
// (e.g. "k3xq-…"), and the SHA-256 that is the only form the server stores.
func NewInviteCode() (code string, hash []byte) {
	b := make([]byte, InviteCodeBytes)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	raw := strings.ToLower(inviteEncoding.EncodeToString(b)) // 32 characters
	var sb strings.Builder
	for i := 0; i < len(raw); i += 4 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(raw[i:min(i+4, len(raw))])
	}
	code = sb.String()
	return code, HashInviteCode(code)
}

// HashInviteCode normalises a code as typed (case, dashes and spaces do not
// matter) and returns its SHA-256.
func HashInviteCode(code string) []byte {
	var sb strings.Builder
	for _, r := range code {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r >= 'A' && r <= 'Z':
			sb.WriteRune(r + ('a' - 'A'))
		default:
			sb.WriteRune(r)
		}
	}
	h := sha256.Sum256([]byte(sb.String()))
	return h[:]
}

// StepUpOperation names an account change that needs a fresh assertion by
// an existing passkey of the account (a step-up), not only a session token.
type StepUpOperation string

// Operations that need a step-up.
const (
	StepUpAddPasskey       StepUpOperation = "add_passkey"
	StepUpDeletePasskey    StepUpOperation = "delete_passkey"
	StepUpEndOtherSessions StepUpOperation = "end_other_sessions"
	StepUpDeleteAccount    StepUpOperation = "delete_account"
	// The admin operations that could turn a stolen admin token into
	// stolen accounts need a step-up by the admin's own passkey too.
	StepUpRecoveryInvite StepUpOperation = "recovery_invite" // bound to the user
	StepUpAdminInvite    StepUpOperation = "admin_invite"    // an invite granting the admin role
	StepUpDeleteUser     StepUpOperation = "delete_user"     // bound to the user
)

// StepUpOperations lists them, for validation and documentation.
var StepUpOperations = []StepUpOperation{StepUpAddPasskey, StepUpDeletePasskey, StepUpEndOtherSessions, StepUpDeleteAccount,
	StepUpRecoveryInvite, StepUpAdminInvite, StepUpDeleteUser}

// AdminOnly reports whether only an admin may step up for the operation.
func (o StepUpOperation) AdminOnly() bool {
	return o == StepUpRecoveryInvite || o == StepUpAdminInvite || o == StepUpDeleteUser
}

// TargetsUser reports whether a grant for the operation is bound to a user
// id (the account acted on).
func (o StepUpOperation) TargetsUser() bool {
	return o == StepUpRecoveryInvite || o == StepUpDeleteUser
}
