package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// Passkey-attested devices (issue #18, item 1; docs/verification.md,
// "Devices approved by passkey"): a device's signature key is bound to a
// passkey assertion whose challenge the server computes from a nonce, the
// key and the device id (models.DeviceBindingChallenge), never from
// anything the client sends as a challenge.

// b64 encodes bytes as the API's byte strings: base64url without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// AssertionBody is a passkey assertion as the client sent it, with the
// server nonce its challenge was computed from.
type AssertionBody struct {
	CredentialID      string `json:"credential_id" doc:"The passkey that signed (WebAuthn credential id), base64url"`
	Nonce             string `json:"nonce" doc:"The server's 32-byte nonce in the challenge, base64url"`
	AuthenticatorData string `json:"authenticator_data" doc:"authenticatorData as the client sent it, base64url"`
	ClientDataJSON    string `json:"client_data_json" doc:"clientDataJSON as the client sent it, base64url"`
	Signature         string `json:"signature" doc:"The assertion signature over authenticatorData ‖ SHA-256(clientDataJSON), base64url"`
}

func assertionBody(a *models.Assertion) *AssertionBody {
	if a == nil {
		return nil
	}
	return &AssertionBody{CredentialID: b64(a.CredentialID), Nonce: b64(a.Nonce), AuthenticatorData: b64(a.AuthenticatorData),
		ClientDataJSON: b64(a.ClientDataJSON), Signature: b64(a.Signature)}
}

// signatureKey is a device's served signature key ("" when unbound).
func signatureKey(k []byte) string {
	if k == nil {
		return ""
	}
	return b64(k)
}

// DeviceBindingOffer is what a bound ceremony's challenge was computed
// from besides the client's own key: the client recomputes the challenge
// and refuses to ask the authenticator when it differs from
// options.challenge.
type DeviceBindingOffer struct {
	DeviceID string `json:"device_id" format:"uuid" doc:"The device the binding is for (a new device's id, allocated now)"`
	Nonce    string `json:"nonce" doc:"The server's 32-byte nonce, base64url"`
}

// LoginCeremony answers the begin step of a login.
type LoginCeremony struct {
	RequestCeremony
	DeviceBinding *DeviceBindingOffer `json:"device_binding,omitempty" doc:"Present when device_signature_key was sent: options.challenge = SHA-256(\"sovereign device binding v1\" ‖ 0x00 ‖ nonce ‖ u16 len ‖ device_signature_key ‖ u16 len ‖ device_id)"`
}

// LoginCeremonyOutput wraps LoginCeremony.
type LoginCeremonyOutput struct {
	Body LoginCeremony
}

// loginPayload is what a login ceremony remembers besides the SessionData.
type loginPayload struct {
	// Decoy marks a ceremony begun for an unknown username.
	Decoy   bool            `json:"decoy,omitempty"`
	Binding *bindingPayload `json:"binding,omitempty"`
}

// bindingPayload is a device binding a ceremony was begun for.
type bindingPayload struct {
	DeviceID string `json:"device_id"`
	Nonce    []byte `json:"nonce"`
	Key      []byte `json:"key"`
	// Existing is set when the binding is for an existing device (login
	// with device_id; the binding endpoint), unset for a new device.
	Existing bool `json:"existing,omitempty"`
	// SessionID is the session that began a binding-endpoint ceremony.
	SessionID string `json:"session_id,omitempty"`
}

// decodeBytes decodes an API byte string (base64url, padding tolerated).
func decodeBytes(field, s string, minLen, maxLen int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(trimPad(s))
	if err != nil || len(b) < minLen || len(b) > maxLen {
		return nil, models.Errorf(models.EINVALID, "invalid_"+field, "%s must be %d to %d bytes, base64url", field, minLen, maxLen)
	}
	return b, nil
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

func newNonce() []byte {
	n := make([]byte, models.BindingNonceLen)
	if _, err := rand.Read(n); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n
}

// newBinding starts a login's device binding: nil without a key. A new
// device's id is allocated here (UUIDv7, lower case).
func newBinding(key, deviceID string) (*bindingPayload, error) {
	if key == "" {
		if deviceID != "" {
			// device_id at begin only means something for a binding.
			return nil, models.Errorf(models.EINVALID, "device_signature_key_required", "device_id at the begin step needs device_signature_key")
		}
		return nil, nil
	}
	k, err := decodeBytes("device_signature_key", key, 1, models.SignatureKeyMaxLen)
	if err != nil {
		return nil, err
	}
	b := &bindingPayload{Key: k, Nonce: newNonce()}
	if deviceID != "" {
		id, err := uuid.Parse(deviceID)
		if err != nil {
			return nil, models.Errorf(models.EINVALID, "invalid_device_id", "device_id must be a device id (UUID)")
		}
		b.DeviceID, b.Existing = id.String(), true
	} else {
		b.DeviceID = uuid.Must(uuid.NewV7()).String()
	}
	return b, nil
}

func (b *bindingPayload) challenge() []byte {
	return models.DeviceBindingChallenge(b.Nonce, b.Key, b.DeviceID)
}

// loginOptions make the binding challenge the ceremony's WebAuthn
// challenge (go-webauthn keeps it in the SessionData and checks the
// assertion's clientDataJSON against it).
func (b *bindingPayload) loginOptions() []webauthn.LoginOption {
	if b == nil {
		return nil
	}
	return []webauthn.LoginOption{webauthn.WithChallenge(b.challenge())}
}

func (b *bindingPayload) offer() *DeviceBindingOffer {
	if b == nil {
		return nil
	}
	return &DeviceBindingOffer{DeviceID: b.DeviceID, Nonce: b64(b.Nonce)}
}

// checkSession recomputes the challenge from what the server kept and
// checks that the ceremony's SessionData carries exactly it, so no
// challenge the client chose is ever accepted as a binding.
func (b *bindingPayload) checkSession(sd webauthn.SessionData) error {
	want := base64.RawURLEncoding.EncodeToString(b.challenge())
	if sd.Challenge != want {
		return fmt.Errorf("binding ceremony: session challenge is not the binding challenge")
	}
	return nil
}

// boundLogin is a verified-to-be-consistent binding of a login finish.
type boundLogin struct{ b *bindingPayload }

// forLogin checks a login finish's device choice against the binding the
// ceremony began with: an existing device's binding needs that device_id,
// a new device's binding a device_name (and no other device_id).
func (b *bindingPayload) forLogin(sd webauthn.SessionData, deviceID, deviceName string) (*boundLogin, error) {
	if b == nil {
		return nil, nil
	}
	if b.Existing && deviceID != b.DeviceID || !b.Existing && (deviceName == "" || deviceID != "" && deviceID != b.DeviceID) {
		return nil, store.ErrBindingDevice
	}
	if err := b.checkSession(sd); err != nil {
		return nil, err
	}
	return &boundLogin{b: b}, nil
}

// withAssertion is the binding to store: the key and the assertion exactly
// as the client sent it.
func (l *boundLogin) withAssertion(parsed *protocol.ParsedCredentialAssertionData) *store.DeviceBinding {
	if l == nil {
		return nil
	}
	return &store.DeviceBinding{DeviceID: l.b.DeviceID, SignatureKey: l.b.Key, Assertion: sentAssertion(parsed, l.b.Nonce)}
}

// sentAssertion is an assertion's bytes as the client sent them.
func sentAssertion(parsed *protocol.ParsedCredentialAssertionData, nonce []byte) models.Assertion {
	r := parsed.Raw.AssertionResponse
	return models.Assertion{CredentialID: bytes.Clone(parsed.RawID), Nonce: nonce, AuthenticatorData: bytes.Clone(r.AuthenticatorData),
		ClientDataJSON: bytes.Clone(r.ClientDataJSON), Signature: bytes.Clone(r.Signature)}
}

// --- POST /v1/me/devices/current/binding/begin|finish ---------------------

// BindingBeginInput starts binding the current device.
type BindingBeginInput struct {
	Body struct {
		SignatureKey string `json:"signature_key" minLength:"1" maxLength:"683" pattern:"^[A-Za-z0-9_-]+$" doc:"The device's MLS signature public key (1 to 512 bytes), base64url without padding"`
	}
}

// BindingCeremony answers the begin step of a device binding.
type BindingCeremony struct {
	RequestCeremony
	DeviceBinding DeviceBindingOffer `json:"device_binding" doc:"options.challenge = SHA-256(\"sovereign device binding v1\" ‖ 0x00 ‖ nonce ‖ u16 len ‖ signature_key ‖ u16 len ‖ device_id): recompute it before asking the authenticator"`
}

// BindingCeremonyOutput wraps BindingCeremony.
type BindingCeremonyOutput struct {
	Body BindingCeremony
}

// BindingFinishInput completes binding the current device.
type BindingFinishInput struct {
	Body struct {
		CeremonyID string              `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential AssertionCredential `json:"credential" doc:"The result of navigator.credentials.get(), as PublicKeyCredential.toJSON() gives it"`
	}
	RawBody []byte
}

// DeviceOutput answers with one device.
type DeviceOutput struct {
	Body DeviceInfo
}

func (h *handler) registerBinding(api huma.API) {
	limited := huma.Middlewares{h.limitAuth(api)}
	huma.Register(api, huma.Operation{
		OperationID: "deviceBindingBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/me/devices/current/binding/begin",
		Summary:     "Begin binding this device's signature key to a passkey",
		Description: "For a device that could not bind at sign-in (right after registration or recovery, whose passkey " +
			"creation signs nothing the server chose), one signed in before binding existed, or one that rotates its " +
			"key: returns WebAuthn request options (your usable passkeys) whose challenge is the device binding " +
			"challenge over a fresh server nonce, `signature_key` and this device's id (`device_binding`; see " +
			"docs/verification.md). Rate-limited per client IP like the other ceremonies.",
		Tags:     []string{TagMe},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, h.bindingBegin)

	huma.Register(api, huma.Operation{
		OperationID: "deviceBindingFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/me/devices/current/binding/finish",
		Summary:     "Finish binding this device's signature key",
		Description: "Verifies the assertion (by a passkey of yours, over the challenge computed at the begin step; the " +
			"ceremony must be this session's and is consumed once) and stores, with this device, the signature key and " +
			"the assertion exactly as sent, replacing any earlier binding (no history is kept). Peers get both from the " +
			"directory and group member lists.",
		Tags:     []string{TagMe},
		Security: bearer,
		Errors:   append([]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone}, ceremonyErrors...),
	}, h.bindingFinish)
}

// usableCredentials are a user's passkeys not blocked as cloned.
func (h *handler) usableCredentials(ctx context.Context, userID string) (*models.User, []models.Credential, error) {
	u, err := h.d.Store.UserByID(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	all, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	var usable []models.Credential
	for _, c := range all {
		if !c.CloneWarning {
			usable = append(usable, c)
		}
	}
	if len(usable) == 0 {
		return nil, nil, models.Errorf(models.EFORBIDDEN, "no_usable_passkey", "your account has no usable passkey: ask an admin for a recovery invite")
	}
	return u, usable, nil
}

// beginAssertion stores a request ceremony of kind for the user's usable
// passkeys, over challenge.
func (h *handler) beginAssertion(ctx context.Context, kind models.CeremonyKind, userID string, challenge []byte, payload any) (*RequestCeremony, error) {
	u, usable, err := h.usableCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	assertion, sd, err := h.d.WebAuthn.BeginLogin(newWAUser(u, usable), webauthn.WithChallenge(challenge))
	if err != nil {
		return nil, fmt.Errorf("begin %s: %w", kind, err)
	}
	opts, err := reshape[RequestOptions](assertion.Response)
	if err != nil {
		return nil, err
	}
	c := &models.Ceremony{Kind: kind, UserID: u.ID}
	if c.SessionData, err = sessionDataJSON(sd); err != nil {
		return nil, err
	}
	if c.Payload, err = json.Marshal(payload); err != nil {
		return nil, fmt.Errorf("encode ceremony payload: %w", err)
	}
	if err := h.d.Store.CreateCeremony(ctx, c, h.ceremonyTTL()); err != nil {
		return nil, err
	}
	return &RequestCeremony{CeremonyID: c.ID, ExpiresAt: c.ExpiresAt, Options: opts}, nil
}

// verifiedAssertion is an assertion by one of a user's passkeys over a
// ceremony's challenge.
type verifiedAssertion struct {
	parsed  *protocol.ParsedCredentialAssertionData
	passkey *models.Credential
	use     store.CredentialUse
}

// verifyAssertion verifies parsed against sd as an assertion by a
// (usable) passkey of userID; a cloned counter blocks the passkey.
func (h *handler) verifyAssertion(ctx context.Context, what, userID string, sd webauthn.SessionData,
	parsed *protocol.ParsedCredentialAssertionData) (*verifiedAssertion, error) {
	u, err := h.d.Store.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	creds, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	cred, err := h.d.WebAuthn.ValidateLogin(newWAUser(u, creds), sd, parsed)
	if err != nil {
		h.logCeremonyFailure(ctx, what, err)
		h.auditLoginFailure(ctx, u.ID, err)
		return nil, ceremonyFailed(err)
	}
	var passkey *models.Credential
	for i := range creds {
		if bytes.Equal(creds[i].CredentialID, cred.ID) {
			passkey = &creds[i]
		}
	}
	if passkey == nil {
		return nil, fmt.Errorf("%s: verified credential not among the user's", what)
	}
	if cred.Authenticator.CloneWarning || passkey.CloneWarning {
		return nil, h.cloneDetected(ctx, passkey, cred.Authenticator.SignCount, parsed.Response.AuthenticatorData.Counter)
	}
	return &verifiedAssertion{parsed: parsed, passkey: passkey, use: store.CredentialUse{PasskeyID: passkey.ID,
		SignCount: cred.Authenticator.SignCount, Flags: uint8(parsed.Response.AuthenticatorData.Flags)}}, nil
}

// parseAssertion parses the assertion at the JSON member path of a raw
// body (e.g. "credential", or "approval" then "credential").
func parseAssertion(raw []byte) (*protocol.ParsedCredentialAssertionData, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, malformedCredential(err)
	}
	return parsed, nil
}

func (h *handler) bindingBegin(ctx context.Context, in *BindingBeginInput) (*BindingCeremonyOutput, error) {
	p := PrincipalFrom(ctx)
	key, err := decodeBytes("signature_key", in.Body.SignatureKey, 1, models.SignatureKeyMaxLen)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	b := &bindingPayload{DeviceID: p.DeviceID, Nonce: newNonce(), Key: key, Existing: true, SessionID: p.SessionID}
	rc, err := h.beginAssertion(ctx, models.CeremonyBindDevice, p.UserID, b.challenge(), b)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &BindingCeremonyOutput{Body: BindingCeremony{RequestCeremony: *rc, DeviceBinding: *b.offer()}}, nil
}

func (h *handler) bindingFinish(ctx context.Context, in *BindingFinishInput) (*DeviceOutput, error) {
	p := PrincipalFrom(ctx)
	raw, err := rawCredential(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	parsed, err := parseAssertion(raw)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	c, err := h.d.Store.ConsumeCeremony(ctx, in.Body.CeremonyID, models.CeremonyBindDevice)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	var b bindingPayload
	if err := json.Unmarshal(c.Payload, &b); err != nil {
		return nil, h.fail(ctx, fmt.Errorf("decode ceremony payload: %w", err))
	}
	if c.UserID != p.UserID || b.SessionID != p.SessionID || b.DeviceID != p.DeviceID {
		return nil, h.fail(ctx, store.ErrCeremonyGone)
	}
	sd, err := parseSessionData(c.SessionData)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if err := b.checkSession(sd); err != nil {
		return nil, h.fail(ctx, err)
	}
	v, err := h.verifyAssertion(ctx, "device binding", p.UserID, sd, parsed)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	d, err := h.d.Store.BindDevice(ctx, p.UserID, v.use, store.DeviceBinding{DeviceID: p.DeviceID, SignatureKey: b.Key,
		Assertion: sentAssertion(parsed, b.Nonce)})
	if err != nil {
		if errors.Is(err, store.ErrCloneDetected) {
			return nil, h.fail(ctx, h.cloneDetected(ctx, v.passkey, v.passkey.SignCount, parsed.Response.AuthenticatorData.Counter))
		}
		return nil, h.fail(ctx, err)
	}
	return &DeviceOutput{Body: deviceInfo(*d, p.DeviceID)}, nil
}
