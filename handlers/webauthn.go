package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sovereign-im/sovereign/models"
)

// waUser adapts a user and their passkeys to go-webauthn's User.
type waUser struct {
	handle      []byte
	name        string
	displayName string
	creds       []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.displayName }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// toWebAuthn converts a stored passkey to go-webauthn's credential record.
func toWebAuthn(c models.Credential) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:                c.CredentialID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags:             webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(c.Flags)),
		Authenticator: webauthn.Authenticator{
			AAGUID:       c.AAGUID,
			SignCount:    c.SignCount,
			CloneWarning: c.CloneWarning,
			Attachment:   protocol.AuthenticatorAttachment(c.Attachment),
		},
	}
}

// fromWebAuthn converts a freshly registered go-webauthn credential.
func fromWebAuthn(c *webauthn.Credential, name string) models.Credential {
	transports := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		transports[i] = string(t)
	}
	return models.Credential{
		CredentialID:      c.ID,
		Name:              name,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transports:        transports,
		Attachment:        string(c.Authenticator.Attachment),
		Flags:             uint8(c.Flags.ProtocolValue()),
		AAGUID:            c.Authenticator.AAGUID,
		SignCount:         c.Authenticator.SignCount,
	}
}

func newWAUser(u *models.User, creds []models.Credential) *waUser {
	wu := &waUser{handle: u.WebAuthnID, name: u.Username, displayName: u.DisplayName}
	for _, c := range creds {
		wu.creds = append(wu.creds, toWebAuthn(c))
	}
	return wu
}

// credentialDescriptors lists passkeys for allow and exclude lists.
func credentialDescriptors(creds []models.Credential) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, c := range creds {
		wc := toWebAuthn(c)
		out = append(out, wc.Descriptor())
	}
	return out
}

// ceremonyFailed turns a go-webauthn verification error into a 403 that
// says what failed (go-webauthn's Details are fixed phrases such as "Error
// validating origin"). Its DevInfo quotes the configured origins and RP ID
// and the client's data, so it is only logged, never answered.
func ceremonyFailed(err error) error {
	msg := "passkey verification failed"
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		msg += ": " + pe.Details
		switch {
		case strings.HasPrefix(pe.DevInfo, "RP Hash mismatch"):
			msg += " (RP Hash mismatch)"
		case strings.HasPrefix(pe.DevInfo, "User verification required"):
			msg += " (User verification required)"
		}
	}
	return &models.Error{Code: models.EFORBIDDEN, Reason: "verification_failed", Message: msg, Err: err}
}

// malformedCredential is the answer to a credential go-webauthn cannot parse.
func malformedCredential(err error) error {
	msg := "the credential is malformed"
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		msg += ": " + pe.Details
	}
	return &models.Error{Code: models.EBADREQUEST, Reason: "invalid_credential", Message: msg, Err: err}
}

// --- Options sent to the browser -----------------------------------------

// RelyingParty names the server to the authenticator.
type RelyingParty struct {
	ID   string `json:"id" doc:"Relying-party ID (the server's domain)" example:"chat.example.org"`
	Name string `json:"name" doc:"Name the authenticator shows" example:"Sovereign"`
}

// WebAuthnUser is the account a passkey is created for.
type WebAuthnUser struct {
	ID          string `json:"id" doc:"WebAuthn user handle, base64url (random, not the user id)" example:"q1m0yq8cQ9m4ZC0y7u0m2hG7m2f2c4Xx1o0b8b5b3aA"`
	Name        string `json:"name" doc:"Username" example:"alice"`
	DisplayName string `json:"displayName" doc:"Display name" example:"Alice Martin"`
}

// CredentialParameter is an accepted public-key algorithm.
type CredentialParameter struct {
	Type string `json:"type" enum:"public-key" doc:"Always public-key"`
	Alg  int64  `json:"alg" doc:"COSE algorithm identifier, e.g. -7 (ES256), -8 (EdDSA), -257 (RS256)" example:"-7"`
}

// CredentialDescriptor names a passkey in allow and exclude lists.
type CredentialDescriptor struct {
	Type       string   `json:"type" enum:"public-key" doc:"Always public-key"`
	ID         string   `json:"id" doc:"Credential ID, base64url"`
	Transports []string `json:"transports,omitempty" doc:"Transports the authenticator reported (usb, nfc, ble, internal, hybrid, …)"`
}

// AuthenticatorSelection states the authenticator requirements.
type AuthenticatorSelection struct {
	AuthenticatorAttachment string `json:"authenticatorAttachment,omitempty" doc:"platform or cross-platform; absent: either"`
	ResidentKey             string `json:"residentKey,omitempty" enum:"discouraged,preferred,required" doc:"Sovereign requires discoverable credentials (required)"`
	RequireResidentKey      bool   `json:"requireResidentKey,omitempty" doc:"Level-1 form of residentKey=required"`
	UserVerification        string `json:"userVerification,omitempty" enum:"discouraged,preferred,required" doc:"Sovereign requires user verification (required)"`
}

// CreationOptions are PublicKeyCredentialCreationOptionsJSON (WebAuthn
// Level 3): pass them to PublicKeyCredential.parseCreationOptionsFromJSON()
// and then navigator.credentials.create({publicKey}).
type CreationOptions struct {
	RP                     RelyingParty           `json:"rp"`
	User                   WebAuthnUser           `json:"user"`
	Challenge              string                 `json:"challenge" doc:"Random challenge, base64url"`
	PubKeyCredParams       []CredentialParameter  `json:"pubKeyCredParams"`
	Timeout                int                    `json:"timeout,omitempty" doc:"Milliseconds the ceremony may take" example:"60000"`
	ExcludeCredentials     []CredentialDescriptor `json:"excludeCredentials,omitempty" doc:"Passkeys the user has already (adding a passkey)"`
	AuthenticatorSelection AuthenticatorSelection `json:"authenticatorSelection"`
	Attestation            string                 `json:"attestation,omitempty" enum:"none,indirect,direct,enterprise" doc:"Attestation conveyance preference"`
}

// RequestOptions are PublicKeyCredentialRequestOptionsJSON (WebAuthn Level
// 3): pass them to PublicKeyCredential.parseRequestOptionsFromJSON() and
// then navigator.credentials.get({publicKey}).
type RequestOptions struct {
	Challenge        string                 `json:"challenge" doc:"Random challenge, base64url"`
	Timeout          int                    `json:"timeout,omitempty" doc:"Milliseconds the ceremony may take" example:"60000"`
	RPID             string                 `json:"rpId,omitempty" doc:"Relying-party ID" example:"chat.example.org"`
	AllowCredentials []CredentialDescriptor `json:"allowCredentials,omitempty" doc:"The user's passkeys (login by username); absent for a discoverable login"`
	UserVerification string                 `json:"userVerification,omitempty" enum:"discouraged,preferred,required" doc:"Sovereign requires user verification (required)"`
}

// reshape converts go-webauthn's options to the documented form through
// their shared JSON names.
func reshape[T any](v any) (T, error) {
	var out T
	raw, err := json.Marshal(v)
	if err != nil {
		return out, fmt.Errorf("encode options: %w", err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("decode options: %w", err)
	}
	return out, nil
}

// --- Responses received from the browser ---------------------------------

// AttestationResponse is the response member of a registration credential.
type AttestationResponse struct {
	ClientDataJSON     string   `json:"clientDataJSON" minLength:"1" maxLength:"16384" doc:"base64url"`
	AttestationObject  string   `json:"attestationObject" minLength:"1" maxLength:"65536" doc:"base64url CBOR attestation object"`
	AuthenticatorData  string   `json:"authenticatorData,omitempty" maxLength:"65536" doc:"base64url (Level 3, informative)"`
	Transports         []string `json:"transports,omitempty" maxItems:"16" doc:"Transports the authenticator supports"`
	PublicKey          string   `json:"publicKey,omitempty" maxLength:"16384" doc:"base64url SPKI (Level 3, informative)"`
	PublicKeyAlgorithm int64    `json:"publicKeyAlgorithm,omitempty" doc:"COSE algorithm (Level 3, informative)"`
}

// AttestationCredential is the RegistrationResponseJSON a browser returns
// from navigator.credentials.create() (PublicKeyCredential.toJSON()).
type AttestationCredential struct {
	ID                      string              `json:"id" minLength:"1" maxLength:"1400" doc:"Credential ID, base64url"`
	RawID                   string              `json:"rawId" minLength:"1" maxLength:"1400" doc:"Credential ID, base64url (same as id)"`
	Type                    string              `json:"type" enum:"public-key"`
	Response                AttestationResponse `json:"response"`
	AuthenticatorAttachment string              `json:"authenticatorAttachment,omitempty" doc:"platform or cross-platform"`
	ClientExtensionResults  map[string]any      `json:"clientExtensionResults,omitempty" doc:"Client extension outputs"`
}

// AssertionResponse is the response member of a login credential.
type AssertionResponse struct {
	ClientDataJSON    string  `json:"clientDataJSON" minLength:"1" maxLength:"16384" doc:"base64url"`
	AuthenticatorData string  `json:"authenticatorData" minLength:"1" maxLength:"65536" doc:"base64url"`
	Signature         string  `json:"signature" minLength:"1" maxLength:"16384" doc:"base64url"`
	UserHandle        *string `json:"userHandle,omitempty" maxLength:"128" nullable:"true" doc:"base64url user handle; required for a discoverable login"`
}

// AssertionCredential is the AuthenticationResponseJSON a browser returns
// from navigator.credentials.get() (PublicKeyCredential.toJSON()).
type AssertionCredential struct {
	ID                      string            `json:"id" minLength:"1" maxLength:"1400" doc:"Credential ID, base64url"`
	RawID                   string            `json:"rawId" minLength:"1" maxLength:"1400" doc:"Credential ID, base64url (same as id)"`
	Type                    string            `json:"type" enum:"public-key"`
	Response                AssertionResponse `json:"response"`
	AuthenticatorAttachment string            `json:"authenticatorAttachment,omitempty" doc:"platform or cross-platform"`
	ClientExtensionResults  map[string]any    `json:"clientExtensionResults,omitempty" doc:"Client extension outputs"`
}

// rawCredential extracts the credential member of a finish body as sent, so
// go-webauthn parses exactly the client's bytes.
func rawCredential(body []byte) ([]byte, error) {
	var env struct {
		Credential json.RawMessage `json:"credential"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Credential) == 0 {
		return nil, models.Errorf(models.EBADREQUEST, "invalid_credential", "the body has no credential")
	}
	return env.Credential, nil
}

// sessionDataJSON and parseSessionData keep go-webauthn's SessionData whole.
func sessionDataJSON(sd *webauthn.SessionData) ([]byte, error) {
	b, err := json.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("encode session data: %w", err)
	}
	return b, nil
}

func parseSessionData(b []byte) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if err := json.Unmarshal(b, &sd); err != nil {
		return sd, fmt.Errorf("decode session data: %w", err)
	}
	return sd, nil
}

// NewWebAuthn builds the relying party from configuration: passkeys must be
// discoverable and user-verified, and go-webauthn enforces the ceremony
// timeout itself (on the real clock) besides the store's own expiry (on the
// server clock).
func NewWebAuthn(rpID, rpName string, origins []string, timeout time.Duration) (*webauthn.WebAuthn, error) {
	requireRK := true
	to := webauthn.TimeoutConfig{Enforce: true, Timeout: timeout, TimeoutUVD: timeout}
	return webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         rpName,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: &requireRK,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: to, Registration: to},
	})
}
