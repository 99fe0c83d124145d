package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// TagAuth groups the passkey ceremonies.
const TagAuth = "auth"

const ceremonyIDDoc = "Id of the pending ceremony, from the begin step (single use, expires with the challenge)"

// --- Shared bodies --------------------------------------------------------

// UserInfo describes an account.
type UserInfo struct {
	ID          string    `json:"id" format:"uuid" doc:"User id"`
	Username    string    `json:"username" doc:"Case-folded username" example:"alice"`
	DisplayName string    `json:"display_name" doc:"Display name" example:"Alice Martin"`
	Role        string    `json:"role" enum:"admin,member" doc:"Role on this server"`
	CreatedAt   time.Time `json:"created_at" doc:"When the account was created"`
}

func userInfo(u *models.User) UserInfo {
	return UserInfo{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: string(u.Role), CreatedAt: u.CreatedAt}
}

// SessionGrant is a new session. The token appears here once and never
// again: the server keeps only its SHA-256.
type SessionGrant struct {
	Token     string    `json:"token" doc:"Session token for Authorization: Bearer. Shown once; store it in the device keychain." example:"mF0Ww2p3t5t7Xw0sQ7m3JQw2Y3n8P1r4c9u6a5d2e0k"`
	SessionID string    `json:"session_id" format:"uuid" doc:"Id of the new session"`
	ExpiresAt time.Time `json:"expires_at" doc:"When the session ends unless ended earlier"`
	UserID    string    `json:"user_id" format:"uuid" doc:"The signed-in user"`
	DeviceID  string    `json:"device_id" format:"uuid" doc:"The device the session belongs to: keep it and send it as device_id at the next login so the device keeps its key packages and groups"`
	PasskeyID string    `json:"passkey_id" format:"uuid" doc:"The passkey registered or used"`
	User      UserInfo  `json:"user"`
}

// SessionGrantOutput answers a finished sign-in ceremony.
type SessionGrantOutput struct {
	Body SessionGrant
}

func grant(token string, si *store.SignIn) *SessionGrantOutput {
	return &SessionGrantOutput{Body: SessionGrant{Token: token, SessionID: si.SessionID, ExpiresAt: si.ExpiresAt,
		UserID: si.User.ID, DeviceID: si.DeviceID, PasskeyID: si.PasskeyID, User: userInfo(si.User)}}
}

// CreationCeremony answers a begin step that creates a passkey.
type CreationCeremony struct {
	CeremonyID string          `json:"ceremony_id" doc:"Send back with the finish step"`
	ExpiresAt  time.Time       `json:"expires_at" doc:"The finish step must arrive before this time"`
	Options    CreationOptions `json:"options" doc:"PublicKeyCredentialCreationOptionsJSON for navigator.credentials.create"`
}

// CreationCeremonyOutput wraps CreationCeremony.
type CreationCeremonyOutput struct {
	Body CreationCeremony
}

// RequestCeremony answers the begin step of a login.
type RequestCeremony struct {
	CeremonyID string         `json:"ceremony_id" doc:"Send back with the finish step"`
	ExpiresAt  time.Time      `json:"expires_at" doc:"The finish step must arrive before this time"`
	Options    RequestOptions `json:"options" doc:"PublicKeyCredentialRequestOptionsJSON for navigator.credentials.get"`
}

// RequestCeremonyOutput wraps RequestCeremony.
type RequestCeremonyOutput struct {
	Body RequestCeremony
}

// --- Inputs ---------------------------------------------------------------

// RegisterBeginInput starts a registration.
type RegisterBeginInput struct {
	Body struct {
		InviteCode  string `json:"invite_code,omitempty" maxLength:"128" doc:"Invite code (case, dashes and spaces do not matter). Required unless the server runs with --registration open." example:"k3xq-7b2m-a9pd-q4rt-w8yz-c5ne-j6hs-v2lf"`
		Username    string `json:"username" minLength:"3" maxLength:"32" pattern:"^[a-zA-Z0-9._-]{3,32}$" doc:"3 to 32 characters of a-z, 0-9, '.', '_' and '-'; stored lower-case; unique" example:"alice"`
		DisplayName string `json:"display_name" minLength:"1" maxLength:"64" doc:"Name shown to others, 1 to 64 characters" example:"Alice Martin"`
	}
}

// RegisterFinishInput completes a registration.
type RegisterFinishInput struct {
	Body struct {
		CeremonyID  string                `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential  AttestationCredential `json:"credential" doc:"The result of navigator.credentials.create(), as PublicKeyCredential.toJSON() gives it"`
		DeviceName  string                `json:"device_name" minLength:"1" maxLength:"64" doc:"Name of this app install, shown in the device list" example:"Alice's phone"`
		PasskeyName string                `json:"passkey_name,omitempty" maxLength:"64" doc:"Name for the passkey (default: Passkey)" example:"iCloud Keychain"`
	}
	RawBody []byte
}

// LoginBeginInput starts a login.
type LoginBeginInput struct {
	Body struct {
		Username           string `json:"username,omitempty" maxLength:"32" doc:"Log in as this user (the options list their passkeys). Omit for a discoverable login: the authenticator offers the passkeys it holds for this server." example:"alice"`
		DeviceSignatureKey string `json:"device_signature_key,omitempty" maxLength:"683" pattern:"^[A-Za-z0-9_-]+$" doc:"The device's MLS signature public key (1 to 512 bytes, base64url without padding). With it, the sign-in binds the key to the passkey assertion: the WebAuthn challenge is the device binding challenge over a server nonce, this key and the device id (see device_binding in the answer and docs/verification.md), and the finish step stores the assertion with the device."`
		DeviceID           string `json:"device_id,omitempty" maxLength:"36" doc:"With device_signature_key: the existing device of yours to (re)bind (send the same device_id at the finish step). Omitted: the binding is for a new device, whose id the server allocates now." example:"0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f"`
	}
}

// LoginFinishInput completes a login.
type LoginFinishInput struct {
	Body struct {
		CeremonyID string              `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential AssertionCredential `json:"credential" doc:"The result of navigator.credentials.get(), as PublicKeyCredential.toJSON() gives it"`
		DeviceID   string              `json:"device_id,omitempty" maxLength:"36" doc:"Sign in again as this existing device of yours (keeps its id, key packages and group memberships). Give device_id or device_name, not both." example:"0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f"`
		DeviceName string              `json:"device_name,omitempty" maxLength:"64" doc:"Create a new device with this name. Give device_id or device_name, not both." example:"Alice's laptop"`
	}
	RawBody []byte
}

// registrationPayload is what a registration ceremony remembers besides
// go-webauthn's SessionData.
type registrationPayload struct {
	InviteHash  []byte `json:"invite_hash,omitempty"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Handle      []byte `json:"handle"`
}

// ceremonyErrors are the problems every ceremony step may answer.
var ceremonyErrors = []int{http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusTooManyRequests}

func (h *handler) registerAuth(api huma.API) {
	limited := huma.Middlewares{h.limitAuth(api)}
	huma.Register(api, huma.Operation{
		OperationID: "registerBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/register/begin",
		Summary:     "Begin registration",
		Description: "Checks the invite code and the username's form and returns WebAuthn creation options for a new " +
			"discoverable, user-verified passkey. The challenge is kept server-side under `ceremony_id` and expires " +
			"after the ceremony timeout (60 s by default). The answer is the same whether the username is taken or " +
			"not (a taken one is refused by the finish step, 409 `username_taken`), so it tells nobody which " +
			"usernames exist. Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: public,
		Errors:   append([]int{http.StatusForbidden}, ceremonyErrors...),
	}, h.registerBegin)

	huma.Register(api, huma.Operation{
		OperationID: "registerFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/register/finish",
		Summary:     "Finish registration",
		Description: "Verifies the browser's attestation against the pending ceremony (consumed: a second finish " +
			"fails with 410) and creates, at once, the user, their first passkey, a device and a session. The invite " +
			"loses one use. The response carries the session token, shown once.",
		Tags:          []string{TagAuth},
		Security:      public,
		DefaultStatus: http.StatusCreated,
		Errors:        append([]int{http.StatusForbidden, http.StatusConflict, http.StatusGone}, ceremonyErrors...),
	}, h.registerFinish)

	huma.Register(api, huma.Operation{
		OperationID: "loginBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/login/begin",
		Summary:     "Begin login",
		Description: "Returns WebAuthn request options. With `username`, the options list that user's passkeys; " +
			"without, the login is discoverable (the authenticator offers its passkeys for this server and returns " +
			"the user handle). An unknown username gets options that look the same but can never succeed. " +
			"With `device_signature_key` the sign-in binds that key to the passkey assertion: the challenge is the " +
			"device binding challenge over a fresh server nonce, the key and the device id (`device_binding` in the " +
			"answer: an existing device's `device_id`, or a new device's id allocated now; docs/verification.md), " +
			"and the finish step stores the assertion with the device. Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: public,
		Errors:   ceremonyErrors,
	}, h.loginBegin)

	huma.Register(api, huma.Operation{
		OperationID: "loginFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/login/finish",
		Summary:     "Finish login",
		Description: "Verifies the browser's assertion against the pending ceremony (consumed: a second finish " +
			"fails with 410) and opens a session for a device: a new one named `device_name`, or, with `device_id`, " +
			"one of your own existing devices again (so an app whose session expired keeps its device id, key " +
			"packages and groups). A revoked device can never sign in again. A passkey whose signature counter did " +
			"not increase is treated as cloned: the login fails and the passkey is blocked. A new device is refused with 507 " +
			"`device_limit_reached` when the account already has as many devices (not revoked) as the `devices_per_user` " +
			"setting allows: revoke one you no longer use from a device you are signed in on, then sign in again. " +
			"A bound sign-in (begun with `device_signature_key`) must finish for the device it was begun for: that " +
			"`device_id` for an existing device, a `device_name` for a new one (422 `binding_device_mismatch` " +
			"otherwise); the device then carries the key and the assertion exactly as sent.",
		Tags:     []string{TagAuth},
		Security: public,
		Errors:   append([]int{http.StatusForbidden, http.StatusNotFound, http.StatusGone, http.StatusInsufficientStorage}, ceremonyErrors...),
	}, h.loginFinish)

	huma.Register(api, huma.Operation{
		OperationID:   "logout",
		Method:        http.MethodPost,
		Path:          "/v1/auth/logout",
		Summary:       "Log out",
		Description:   "Ends the current session. The device stays and may sign in again with `device_id`.",
		Tags:          []string{TagAuth},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized},
	}, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		if err := h.d.Store.EndSession(ctx, p.UserID, p.SessionID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
}

// limitAuth is operation middleware applying the per-IP ceremony rate
// limit before the body is even read, so floods cost as little as possible.
func (h *handler) limitAuth(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		ok, wait := h.authLimit.Allow(h.limitKey(ctx.Context()).String(), 1)
		if ok {
			next(ctx)
			return
		}
		p, _ := h.fail(ctx.Context(), &models.Error{Code: models.ERATELIMIT, Reason: "rate_limited",
			Message: "too many sign-in attempts from your address; retry later", RetryAfter: wait}).(*Problem)
		writeProblem(ctx, p)
	}
}

// writeProblem answers p from operation middleware, with its headers and
// code.
func writeProblem(ctx huma.Context, p *Problem) {
	for k, v := range p.GetHeaders() {
		ctx.SetHeader(k, v[0])
	}
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(p.Status)
	_ = json.NewEncoder(ctx.BodyWriter()).Encode(p)
}

func (h *handler) ceremonyTTL() time.Duration {
	if t := h.d.Config.Limits.CeremonyTimeout; t > 0 {
		return t
	}
	return time.Minute
}

func (h *handler) registerBegin(ctx context.Context, in *RegisterBeginInput) (*CreationCeremonyOutput, error) {
	username, err := models.NormalizeUsername(in.Body.Username)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	display, err := models.CleanName("display_name", in.Body.DisplayName, models.DisplayNameMaxLen)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	payload := registrationPayload{Username: username, DisplayName: display}
	if in.Body.InviteCode != "" {
		payload.InviteHash = models.HashInviteCode(in.Body.InviteCode)
		inv, err := h.d.Store.CheckInvite(ctx, payload.InviteHash)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if inv.RecoveryUserID != "" {
			return nil, h.fail(ctx, store.ErrInviteInvalid)
		}
	} else if h.registrationMode() != "open" {
		return nil, h.fail(ctx, models.Errorf(models.EFORBIDDEN, "invite_required", "registration on this server needs an invite code"))
	}
	// Whether the username is free is not checked here, so that this
	// answer does not tell which usernames exist: a taken one fails at the
	// finish step, after a verified passkey ceremony with a valid invite.
	if payload.Handle, err = store.NewUserHandle(); err != nil {
		return nil, h.fail(ctx, err)
	}
	user := &waUser{handle: payload.Handle, name: username, displayName: display}
	creation, sd, err := h.d.WebAuthn.BeginRegistration(user)
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("begin registration: %w", err))
	}
	return h.saveCreation(ctx, models.CeremonyRegister, "", creation, sd, payload)
}

func (h *handler) saveCreation(ctx context.Context, kind models.CeremonyKind, userID string, creation *protocol.CredentialCreation, sd *webauthn.SessionData, payload any) (*CreationCeremonyOutput, error) {
	opts, err := reshape[CreationOptions](creation.Response)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	c := &models.Ceremony{Kind: kind, UserID: userID}
	if c.SessionData, err = sessionDataJSON(sd); err != nil {
		return nil, h.fail(ctx, err)
	}
	if payload != nil {
		if c.Payload, err = json.Marshal(payload); err != nil {
			return nil, h.fail(ctx, fmt.Errorf("encode ceremony payload: %w", err))
		}
	}
	if err := h.d.Store.CreateCeremony(ctx, c, h.ceremonyTTL()); err != nil {
		return nil, h.fail(ctx, err)
	}
	return &CreationCeremonyOutput{Body: CreationCeremony{CeremonyID: c.ID, ExpiresAt: c.ExpiresAt, Options: opts}}, nil
}

func (h *handler) registerFinish(ctx context.Context, in *RegisterFinishInput) (*SessionGrantOutput, error) {
	var payload registrationPayload
	f, err := h.startCreationFinish(ctx, in.Body.CeremonyID, models.CeremonyRegister, in.Body.DeviceName, in.Body.PasskeyName, in.RawBody, &payload)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	user := &waUser{handle: payload.Handle, name: payload.Username, displayName: payload.DisplayName}
	cred, err := h.d.WebAuthn.CreateCredential(user, f.session, f.parsed)
	if err != nil {
		h.logCeremonyFailure(ctx, "registration", err)
		return nil, h.fail(ctx, ceremonyFailed(err))
	}
	token, hash := models.NewToken()
	si, err := h.d.Store.Register(ctx, store.Registration{
		InviteHash: payload.InviteHash, Username: payload.Username, DisplayName: payload.DisplayName,
		Handle: payload.Handle, Credential: fromWebAuthn(cred, f.passkeyName), DeviceName: f.deviceName,
		TokenHash: hash, SessionTTL: h.d.Config.SessionTTL, ClientIP: h.actor(ctx, nil).IP,
	})
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	h.log().InfoContext(ctx, "user registered", "user_id", si.User.ID, "role", si.User.Role, "device_id", si.DeviceID)
	return grant(token, si), nil
}

// creationFinish is what every passkey-creation finish (registration,
// recovery) starts from: valid names, the parsed credential, and the
// consumed (single-use) ceremony with its WebAuthn session data.
type creationFinish struct {
	deviceName, passkeyName string
	parsed                  *protocol.ParsedCredentialCreationData
	ceremony                *models.Ceremony
	session                 webauthn.SessionData
}

// startCreationFinish checks the names, parses the credential in raw,
// consumes the ceremony of kind and decodes its kind-specific payload into
// payload (a pointer).
func (h *handler) startCreationFinish(ctx context.Context, ceremonyID string, kind models.CeremonyKind,
	deviceName, passkeyName string, raw []byte, payload any) (*creationFinish, error) {
	var f creationFinish
	var err error
	if f.deviceName, err = models.CleanName("device_name", deviceName, models.DeviceNameMaxLen); err != nil {
		return nil, err
	}
	if f.passkeyName, err = h.passkeyName(passkeyName); err != nil {
		return nil, err
	}
	if f.parsed, err = h.parseCreation(raw); err != nil {
		return nil, err
	}
	if f.ceremony, err = h.d.Store.ConsumeCeremony(ctx, ceremonyID, kind); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(f.ceremony.Payload, payload); err != nil {
		return nil, fmt.Errorf("decode ceremony payload: %w", err)
	}
	if f.session, err = parseSessionData(f.ceremony.SessionData); err != nil {
		return nil, err
	}
	return &f, nil
}

func (h *handler) passkeyName(s string) (string, error) {
	if s == "" {
		return "Passkey", nil
	}
	return models.CleanName("passkey_name", s, models.PasskeyNameMaxLen)
}

func (h *handler) parseCreation(body []byte) (*protocol.ParsedCredentialCreationData, error) {
	raw, err := rawCredential(body)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(raw)
	if err != nil {
		return nil, malformedCredential(err)
	}
	return parsed, nil
}

// registrationMode is the registration mode in force (the run-time
// setting, which defaults to --registration).
func (h *handler) registrationMode() string {
	if h.d.Settings != nil {
		return h.d.Settings.Get().RegistrationMode
	}
	return h.d.Config.RegistrationMode
}

// auditLoginFailure records a login whose assertion failed verification
// (security event; bounded by the per-IP ceremony rate limit). userID is
// the account the ceremony named, when known.
func (h *handler) auditLoginFailure(ctx context.Context, userID string, err error) {
	detail := map[string]any{"error": err.Error()}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		detail["error"] = pe.Type
	}
	ev := models.AuditEntry{Actor: h.actor(ctx, nil), Action: models.AuditLoginFailed, Detail: detail}
	if userID != "" {
		ev.TargetType, ev.TargetID = models.TargetUser, userID
	}
	if aerr := h.d.Store.Audit(ctx, ev); aerr != nil {
		h.log().WarnContext(ctx, "audit failed login", "err", aerr)
	}
}

func (h *handler) logCeremonyFailure(ctx context.Context, what string, err error) {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		h.log().InfoContext(ctx, what+" ceremony failed", "type", pe.Type, "details", pe.Details)
		h.log().DebugContext(ctx, what+" ceremony failed", "info", pe.DevInfo, "client", clientip.From(ctx).String())
		return
	}
	h.log().InfoContext(ctx, what+" ceremony failed", "err", err)
}

func (h *handler) loginBegin(ctx context.Context, in *LoginBeginInput) (*LoginCeremonyOutput, error) {
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		err       error
	)
	c := &models.Ceremony{Kind: models.CeremonyLogin}
	var payload loginPayload
	if payload.Binding, err = newBinding(in.Body.DeviceSignatureKey, in.Body.DeviceID); err != nil {
		return nil, h.fail(ctx, err)
	}
	opts := payload.Binding.loginOptions()
	if in.Body.Username == "" {
		assertion, sd, err = h.d.WebAuthn.BeginDiscoverableLogin(opts...)
	} else {
		username, nerr := models.NormalizeUsername(in.Body.Username)
		if nerr != nil {
			return nil, h.fail(ctx, nerr)
		}
		// Known and unknown usernames take the same steps (both queries,
		// the decoy computed either way) so that neither the answer nor its
		// time tells whether the account exists.
		u, uerr := h.d.Store.UserByUsername(ctx, username)
		var creds []models.Credential
		uid := ""
		if uerr == nil {
			uid = u.ID
		} else if !models.IsCode(uerr, models.ENOTFOUND) {
			return nil, h.fail(ctx, fmt.Errorf("begin login: %w", uerr))
		}
		if creds, err = h.d.Store.CredentialsByUser(ctx, uid); err != nil {
			return nil, h.fail(ctx, fmt.Errorf("begin login: %w", err))
		}
		decoy, derr := h.decoyCredentials(ctx, username)
		if derr != nil {
			return nil, h.fail(ctx, fmt.Errorf("begin login: %w", derr))
		}
		if uerr == nil && len(creds) > 0 {
			c.UserID = u.ID
			assertion, sd, err = h.d.WebAuthn.BeginLogin(newWAUser(u, creds), opts...)
		} else {
			// Unknown username: options like a known one's (a bound one's
			// too: same device_binding), with decoy credentials derived from
			// the username. The ceremony can never succeed.
			payload.Decoy = true
			assertion, sd, err = h.d.WebAuthn.BeginDiscoverableLogin(append(opts, webauthn.WithAllowedCredentials(decoy))...)
		}
	}
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("begin login: %w", err))
	}
	ropts, err := reshape[RequestOptions](assertion.Response)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if c.SessionData, err = sessionDataJSON(sd); err != nil {
		return nil, h.fail(ctx, err)
	}
	if c.Payload, err = json.Marshal(payload); err != nil {
		return nil, h.fail(ctx, fmt.Errorf("encode ceremony payload: %w", err))
	}
	if err := h.d.Store.CreateCeremony(ctx, c, h.ceremonyTTL()); err != nil {
		return nil, h.fail(ctx, err)
	}
	return &LoginCeremonyOutput{Body: LoginCeremony{RequestCeremony: RequestCeremony{CeremonyID: c.ID, ExpiresAt: c.ExpiresAt,
		Options: ropts}, DeviceBinding: payload.Binding.offer()}}, nil
}

// decoyShapes are the credential shapes (id length, transports as
// browsers report them) of common authenticators: platform keychains,
// password managers, security keys. A decoy takes one, so its answer looks
// like a real account's.
var decoyShapes = []struct {
	idLen      int
	transports []protocol.AuthenticatorTransport
}{
	{16, []protocol.AuthenticatorTransport{protocol.Hybrid, protocol.Internal}}, // Google Password Manager
	{20, []protocol.AuthenticatorTransport{protocol.Hybrid, protocol.Internal}}, // iCloud Keychain
	{32, []protocol.AuthenticatorTransport{protocol.Internal}},                  // Windows Hello
	{32, []protocol.AuthenticatorTransport{protocol.Hybrid, protocol.Internal}}, // password managers
	{32, nil}, // authenticators that report no transports
	{64, []protocol.AuthenticatorTransport{protocol.NFC, protocol.USB}}, // security keys
	{48, []protocol.AuthenticatorTransport{protocol.USB}},
}

// decoyCredentials are stable, unguessable credentials for an unknown
// username: one to three, each of a real authenticator's shape, all drawn
// from an HMAC of the username under a server secret that survives
// restarts, so that comparing answers (also across a restart) does not tell
// known usernames from unknown ones.
func (h *handler) decoyCredentials(ctx context.Context, username string) ([]protocol.CredentialDescriptor, error) {
	key, err := h.d.Store.ServerSecret(ctx, store.SecretLoginDecoy)
	if err != nil {
		return nil, err
	}
	stream := func(label string, i int) []byte {
		m := hmac.New(sha256.New, key)
		fmt.Fprintf(m, "%s\x00%d\x00%s", label, i, username)
		return m.Sum(nil)
	}
	seed := stream("shape", 0)
	n := 1
	switch {
	case seed[0] < 26: // about 1 in 10 people hold three passkeys
		n = 3
	case seed[0] < 77: // and 2 in 10 two
		n = 2
	}
	out := make([]protocol.CredentialDescriptor, n)
	for i := range out {
		shape := decoyShapes[int(seed[1+i])%len(decoyShapes)]
		id := append(stream("id", i), stream("id2", i)...)[:shape.idLen]
		out[i] = protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: id, Transport: shape.transports}
	}
	return out, nil
}

func (h *handler) loginFinish(ctx context.Context, in *LoginFinishInput) (*SessionGrantOutput, error) {
	var deviceName string
	switch {
	case in.Body.DeviceID != "" && in.Body.DeviceName != "":
		return nil, h.fail(ctx, models.Errorf(models.EINVALID, "device_choice", "give device_id or device_name, not both"))
	case in.Body.DeviceID == "" && in.Body.DeviceName == "":
		return nil, h.fail(ctx, models.Errorf(models.EINVALID, "device_choice", "give device_id (an existing device of yours) or device_name (a new device)"))
	case in.Body.DeviceName != "":
		var err error
		if deviceName, err = models.CleanName("device_name", in.Body.DeviceName, models.DeviceNameMaxLen); err != nil {
			return nil, h.fail(ctx, err)
		}
	}
	raw, err := rawCredential(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, h.fail(ctx, malformedCredential(err))
	}
	c, err := h.d.Store.ConsumeCeremony(ctx, in.Body.CeremonyID, models.CeremonyLogin)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	sd, err := parseSessionData(c.SessionData)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	var payload loginPayload
	if err := json.Unmarshal(c.Payload, &payload); err != nil {
		return nil, h.fail(ctx, fmt.Errorf("decode ceremony payload: %w", err))
	}
	binding, err := payload.Binding.forLogin(sd, in.Body.DeviceID, deviceName)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	var (
		user  *models.User
		creds []models.Credential
	)
	load := func(u *models.User) (*waUser, error) {
		cs, err := h.d.Store.CredentialsByUser(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		user, creds = u, cs
		return newWAUser(u, cs), nil
	}
	var cred *webauthn.Credential
	switch {
	case payload.Decoy:
		err := errors.New("unknown user")
		h.auditLoginFailure(ctx, "", err)
		return nil, h.fail(ctx, ceremonyFailed(err))
	case c.UserID != "":
		u, err := h.d.Store.UserByID(ctx, c.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		wu, err := load(u)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		cred, err = h.d.WebAuthn.ValidateLogin(wu, sd, parsed)
		if err != nil {
			h.logCeremonyFailure(ctx, "login", err)
			h.auditLoginFailure(ctx, u.ID, err)
			return nil, h.fail(ctx, ceremonyFailed(err))
		}
	default:
		_, cred, err = h.d.WebAuthn.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
			u, err := h.d.Store.UserByHandle(ctx, userHandle)
			if err != nil {
				return nil, err
			}
			return load(u)
		}, sd, parsed)
		if err != nil {
			h.logCeremonyFailure(ctx, "login", err)
			h.auditLoginFailure(ctx, "", err)
			return nil, h.fail(ctx, ceremonyFailed(err))
		}
	}
	var passkey *models.Credential
	for i := range creds {
		if string(creds[i].CredentialID) == string(cred.ID) {
			passkey = &creds[i]
		}
	}
	if passkey == nil {
		return nil, h.fail(ctx, fmt.Errorf("login: verified credential not among the user's"))
	}
	if cred.Authenticator.CloneWarning {
		return nil, h.fail(ctx, h.cloneDetected(ctx, passkey, cred.Authenticator.SignCount, parsed.Response.AuthenticatorData.Counter))
	}
	token, hash := models.NewToken()
	si, err := h.d.Store.CompleteLogin(ctx, store.Login{
		UserID: user.ID, PasskeyID: passkey.ID, SignCount: cred.Authenticator.SignCount,
		Flags: uint8(parsed.Response.AuthenticatorData.Flags), DeviceID: in.Body.DeviceID, DeviceName: deviceName,
		TokenHash: hash, SessionTTL: h.d.Config.SessionTTL, ClientIP: h.actor(ctx, nil).IP,
		Location: h.signInLocation(ctx, in.Body.DeviceID), Binding: binding.withAssertion(parsed),
	})
	if errors.Is(err, store.ErrCloneDetected) {
		return nil, h.fail(ctx, h.cloneDetected(ctx, passkey, passkey.SignCount, parsed.Response.AuthenticatorData.Counter))
	}
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return grant(token, si), nil
}

// signInLocation is the coarse location of a new device's sign-in for its
// new_device notice: nil without --geoip-db, when the sign-in is on a
// known device (deviceID set: no notice), or for a private or unknown
// address. The lookup is local and happens before the use case, outside
// the write transaction; the address is neither stored nor logged here.
func (h *handler) signInLocation(ctx context.Context, deviceID string) *models.Location {
	if h.d.GeoIP == nil || deviceID != "" {
		return nil
	}
	return h.d.GeoIP.Locate(clientip.From(ctx))
}

// cloneDetected blocks a passkey whose counter did not increase, records
// it and returns the error for the client.
func (h *handler) cloneDetected(ctx context.Context, passkey *models.Credential, stored, presented uint32) error {
	h.log().WarnContext(ctx, "passkey signature counter did not increase: possible cloned authenticator; passkey blocked",
		"user_id", passkey.UserID, "passkey_id", passkey.ID, "stored_count", stored, "presented_count", presented)
	ev := models.AuditEntry{Actor: h.actor(ctx, nil), Action: models.AuditCloneWarning, TargetType: models.TargetPasskey,
		TargetID: passkey.ID, Detail: map[string]any{"user_id": passkey.UserID, "stored_count": stored, "presented_count": presented}}
	if err := h.d.Store.MarkCredentialCloned(ctx, passkey.ID, ev); err != nil {
		return err
	}
	return store.ErrCloneDetected
}
