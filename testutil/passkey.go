package testutil

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// Passkey is a virtual authenticator holding one passkey (an EC2 P-256
// key), standing in for a browser and a phone in tests. It signs real
// WebAuthn responses that the server verifies like any other.
type Passkey struct {
	RP            virtualwebauthn.RelyingParty
	Authenticator virtualwebauthn.Authenticator
	Credential    virtualwebauthn.Credential
	// UserHandle is the WebAuthn user handle the passkey was created for.
	UserHandle []byte
	// KeepCounter stops Assert from incrementing the signature counter
	// (to play a cloned authenticator, set Credential.Counter yourself).
	KeepCounter bool
}

// NewPasskey returns a fresh passkey for the server's relying party (its RP
// ID and first origin).
func (s *Server) NewPasskey() *Passkey {
	return &Passkey{
		RP: virtualwebauthn.RelyingParty{ID: s.Config.RPID, Name: s.Config.RPName, Origin: s.Config.RPOrigins[0]},
		// bench.NewCredential: virtualwebauthn.NewCredential makes about one
		// key in 64 that the server (rightly) refuses.
		Credential: bench.NewCredential(),
	}
}

// Create answers creation options (the "options" member of a begin
// response) with an attestation, as navigator.credentials.create would.
func (p *Passkey) Create(t testing.TB, options json.RawMessage) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		t.Fatalf("parse creation options: %v\n%s", err, options)
	}
	p.UserHandle = []byte(opts.UserID)
	if p.Authenticator.Aaguid == ([16]byte{}) {
		opt := p.Authenticator.Options
		opt.UserHandle = p.UserHandle
		p.Authenticator = virtualwebauthn.NewAuthenticatorWithOptions(opt)
	}
	p.Authenticator.Options.UserHandle = p.UserHandle
	return json.RawMessage(virtualwebauthn.CreateAttestationResponse(p.RP, p.Authenticator, p.Credential, *opts))
}

// Assert answers request options with an assertion, as
// navigator.credentials.get would, first incrementing the signature counter
// like a real authenticator (unless KeepCounter is set).
func (p *Passkey) Assert(t testing.TB, options json.RawMessage) json.RawMessage {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		t.Fatalf("parse request options: %v\n%s", err, options)
	}
	if !p.KeepCounter {
		p.Credential.Counter++
	}
	p.Authenticator.Options.UserHandle = p.UserHandle
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(p.RP, p.Authenticator, p.Credential, *opts))
}

// CredentialID is the passkey's credential id, base64url.
func (p *Passkey) CredentialID() string { return base64.RawURLEncoding.EncodeToString(p.Credential.ID) }

// Ceremony is a begin response: the ceremony id and the options to give
// the authenticator.
type Ceremony struct {
	CeremonyID string          `json:"ceremony_id"`
	ExpiresAt  time.Time       `json:"expires_at"`
	Options    json.RawMessage `json:"options"`
}

// Grant is a finish response that opened a session.
type Grant struct {
	Token     string    `json:"token"`
	SessionID string    `json:"session_id"`
	ExpiresAt time.Time `json:"expires_at"`
	UserID    string    `json:"user_id"`
	DeviceID  string    `json:"device_id"`
	PasskeyID string    `json:"passkey_id"`
	User      struct {
		Username string `json:"username"`
		Role     string `json:"role"`
	} `json:"user"`
}

// Account returns the grant as an Account.
func (g Grant) Account() Account {
	return Account{UserID: g.UserID, DeviceID: g.DeviceID, Token: g.Token, Username: g.User.Username,
		SessionID: g.SessionID, PasskeyID: g.PasskeyID}
}

// Invite creates an invite straight in the store (as `sovereign invite`
// does) and returns its code: one use, valid for a day.
func (s *Server) Invite(t testing.TB, role models.Role) string {
	t.Helper()
	code, _, err := s.Store.CreateInvite(context.Background(), store.NewInvite{Role: role, TTL: 24 * time.Hour, Uses: 1})
	if err != nil {
		t.Fatalf("create invite: %v", err)
	}
	return code
}

// AdminInvite returns a fresh one-use admin invite code.
func (s *Server) AdminInvite(t testing.TB) string { t.Helper(); return s.Invite(t, models.RoleAdmin) }

// Begin POSTs a begin step and decodes the ceremony, failing the test
// unless the answer is 200.
func (s *Server) Begin(t testing.TB, path, token string, body any) Ceremony {
	t.Helper()
	r := s.Do(t, http.MethodPost, path, token, body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %d %s", path, r.StatusCode, r.Body)
	}
	var c Ceremony
	r.JSON(t, &c)
	return c
}

// Register signs a new user up through the real registration ceremony
// over HTTP (inviteCode may be empty in open registration) and returns the
// account (signed in on a new device) and the passkey.
func (s *Server) Register(t testing.TB, inviteCode, username string) (Account, *Passkey) {
	t.Helper()
	pk := s.NewPasskey()
	c := s.Begin(t, "/v1/auth/register/begin", "", map[string]any{
		"invite_code": inviteCode, "username": username, "display_name": "Test " + username,
	})
	r := s.Do(t, http.MethodPost, "/v1/auth/register/finish", "", map[string]any{
		"ceremony_id": c.CeremonyID, "credential": pk.Create(t, c.Options), "device_name": username + "'s test device",
	})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("register %s = %d %s", username, r.StatusCode, r.Body)
	}
	var g Grant
	r.JSON(t, &g)
	return g.Account(), pk
}

// RegisterAdmin registers a new admin through a fresh admin invite.
func (s *Server) RegisterAdmin(t testing.TB, username string) (Account, *Passkey) {
	t.Helper()
	return s.Register(t, s.AdminInvite(t), username)
}

// RegisterMember registers a new member through a fresh invite.
func (s *Server) RegisterMember(t testing.TB, username string) (Account, *Passkey) {
	t.Helper()
	return s.Register(t, s.Invite(t, models.RoleMember), username)
}

// LoginOptions choose how Login signs in.
type LoginOptions struct {
	// Username logs in by username; empty: a discoverable login.
	Username string
	// DeviceID signs in again as this existing device; empty: a new device.
	DeviceID string
	// DeviceName names the new device (default "test device").
	DeviceName string
	// Headers are extra request headers of the finish request, as name,
	// value pairs (e.g. X-Forwarded-For behind --trusted-proxies).
	Headers []string
}

// Login signs in with a passkey through the real login ceremony over HTTP
// and returns the new session as an Account.
func (s *Server) Login(t testing.TB, pk *Passkey, o LoginOptions) Account {
	t.Helper()
	r := s.LoginResponse(t, pk, o)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("login = %d %s", r.StatusCode, r.Body)
	}
	var g Grant
	r.JSON(t, &g)
	return g.Account()
}

// LoginResponse runs a login ceremony and returns the finish response
// whatever its status, for negative tests.
func (s *Server) LoginResponse(t testing.TB, pk *Passkey, o LoginOptions) *Response {
	t.Helper()
	begin := map[string]any{}
	if o.Username != "" {
		begin["username"] = o.Username
	}
	c := s.Begin(t, "/v1/auth/login/begin", "", begin)
	finish := map[string]any{"ceremony_id": c.CeremonyID, "credential": pk.Assert(t, c.Options)}
	if o.DeviceID != "" {
		finish["device_id"] = o.DeviceID
	} else {
		name := o.DeviceName
		if name == "" {
			name = "test device"
		}
		finish["device_name"] = name
	}
	return s.Do(t, http.MethodPost, "/v1/auth/login/finish", "", finish, o.Headers...)
}

// StepUp runs the step-up ceremony for an account change with one of the
// account's passkeys and returns the grant to send as the Sovereign-Step-Up
// header. target is the passkey id of a delete_passkey step-up, the user id
// of a recovery_invite or delete_user one (an admin's).
func (s *Server) StepUp(t testing.TB, token string, with *Passkey, operation, target string) string {
	t.Helper()
	body := map[string]any{"operation": operation}
	if target != "" && models.StepUpOperation(operation).TargetsUser() {
		body["user_id"] = target
	} else if target != "" {
		body["passkey_id"] = target
	}
	c := s.Begin(t, "/v1/auth/step-up/begin", token, body)
	r := s.Do(t, http.MethodPost, "/v1/auth/step-up/finish", token, map[string]any{
		"ceremony_id": c.CeremonyID, "credential": with.Assert(t, c.Options),
	})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("step-up %s = %d %s", operation, r.StatusCode, r.Body)
	}
	var g struct {
		StepUp string `json:"step_up"`
	}
	r.JSON(t, &g)
	return g.StepUp
}

// AddPasskey adds a new passkey to a signed-in account through the real
// add-passkey ceremony and its approval by an existing passkey of the
// account (with), and returns it with its passkey id.
func (s *Server) AddPasskey(t testing.TB, token string, with *Passkey) (*Passkey, string) {
	t.Helper()
	pk := s.NewPasskey()
	r := s.AddPasskeyResponse(t, token, pk, with)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("add passkey = %d %s", r.StatusCode, r.Body)
	}
	var out struct {
		ID string `json:"id"`
	}
	r.JSON(t, &out)
	return pk, out.ID
}

// AddPasskeyResponse runs the add-passkey ceremony for the new passkey pk,
// approved by the passkey approver, and returns the finish response
// whatever its status.
func (s *Server) AddPasskeyResponse(t testing.TB, token string, pk, approver *Passkey) *Response {
	t.Helper()
	c := s.Begin(t, "/v1/auth/add-passkey/begin", token, nil)
	cred := pk.Create(t, c.Options)
	a := s.Begin(t, "/v1/auth/add-passkey/approve/begin", token, map[string]any{"ceremony_id": c.CeremonyID, "credential": cred})
	return s.Do(t, http.MethodPost, "/v1/auth/add-passkey/finish", token, map[string]any{
		"ceremony_id": c.CeremonyID, "credential": cred, "name": "second passkey",
		"approval": map[string]any{"ceremony_id": a.CeremonyID, "credential": approver.Assert(t, a.Options)},
	})
}

// DeletePasskey deletes a passkey after a step-up with another passkey
// (with) and returns the response.
func (s *Server) DeletePasskey(t testing.TB, token string, with *Passkey, passkeyID string) *Response {
	t.Helper()
	grant := s.StepUp(t, token, with, "delete_passkey", passkeyID)
	return s.Do(t, http.MethodDelete, "/v1/me/passkeys/"+passkeyID, token, nil, "Sovereign-Step-Up", grant)
}
