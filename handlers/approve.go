package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// Adding a passkey needs the approval of an existing passkey of the
// account: an assertion whose challenge commits to the new credential id
// and public key (models.PasskeyApprovalChallenge). So a server operator
// cannot add a passkey of its own unseen: peers check every passkey they
// did not pin against an approval by one they trust.

// AddPasskeyFinishInput completes adding a passkey.
type AddPasskeyFinishInput struct {
	Body struct {
		CeremonyID string                `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential AttestationCredential `json:"credential" doc:"The result of navigator.credentials.create(), as PublicKeyCredential.toJSON() gives it"`
		Name       string                `json:"name,omitempty" maxLength:"64" doc:"Name for the passkey (default: Passkey)" example:"YubiKey 5C"`
		Approval   *ApprovalInput        `json:"approval,omitempty" doc:"The approval of the new passkey by an existing one (addPasskeyApproveBegin, then navigator.credentials.get()). Required: without it, 403 approval_required."`
	}
	RawBody []byte
}

// ApprovalInput is an existing passkey's assertion over the approval
// challenge.
type ApprovalInput struct {
	CeremonyID string              `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the approval ceremony, from addPasskeyApproveBegin"`
	Credential AssertionCredential `json:"credential" doc:"The result of navigator.credentials.get() over the approval options, as PublicKeyCredential.toJSON() gives it"`
}

// ApproveBeginInput starts the approval of a passkey being added.
type ApproveBeginInput struct {
	Body struct {
		CeremonyID string                `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending add-passkey ceremony"`
		Credential AttestationCredential `json:"credential" doc:"The new passkey: the result of navigator.credentials.create() for that ceremony"`
	}
	RawBody []byte
}

// PasskeyApprovalOffer is what the approval challenge was computed from.
type PasskeyApprovalOffer struct {
	Nonce        string `json:"nonce" doc:"The server's 32-byte nonce, base64url"`
	CredentialID string `json:"credential_id" doc:"The new passkey's credential id, base64url"`
	PublicKey    string `json:"public_key" doc:"The new passkey's COSE_Key public key as the server will store it, base64url"`
}

// ApprovalCeremony answers the begin step of a passkey approval.
type ApprovalCeremony struct {
	RequestCeremony
	PasskeyApproval PasskeyApprovalOffer `json:"passkey_approval" doc:"options.challenge = SHA-256(\"sovereign passkey approval v1\" ‖ 0x00 ‖ nonce ‖ u16 len ‖ credential_id ‖ u16 len ‖ public_key): recompute it (and check credential_id is the passkey just created) before asking an existing passkey"`
}

// ApprovalCeremonyOutput wraps ApprovalCeremony.
type ApprovalCeremonyOutput struct {
	Body ApprovalCeremony
}

// approvalPayload is what an approval ceremony remembers.
type approvalPayload struct {
	AddCeremonyID string `json:"add_ceremony_id"`
	SessionID     string `json:"session_id"`
	CredentialID  []byte `json:"credential_id"`
	PublicKey     []byte `json:"public_key"`
	Nonce         []byte `json:"nonce"`
}

func (a *approvalPayload) challenge() []byte {
	return models.PasskeyApprovalChallenge(a.Nonce, a.CredentialID, a.PublicKey)
}

var (
	errApprovalRequired = models.Errorf(models.EFORBIDDEN, "approval_required",
		"adding a passkey needs the approval of an existing passkey of yours (addPasskeyApproveBegin)")
	errApprovalMismatch = models.Errorf(models.EFORBIDDEN, "approval_mismatch",
		"the approval was made for another add-passkey ceremony or another new passkey")
)

func (h *handler) registerAddPasskey(api huma.API) {
	limited := huma.Middlewares{h.limitAuth(api)}
	huma.Register(api, huma.Operation{
		OperationID: "addPasskeyBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/add-passkey/begin",
		Summary:     "Begin adding a passkey",
		Description: "For the signed-in user: returns WebAuthn creation options for another passkey (the user's existing " +
			"passkeys are excluded). The new passkey is only added with the approval of an existing one " +
			"(`addPasskeyApproveBegin`, checked at the finish step), so a stolen session token alone cannot add a " +
			"passkey; the `Sovereign-Step-Up` header is optional now (a grant sent is checked and spent). " +
			"Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, h.addPasskeyBegin)

	huma.Register(api, huma.Operation{
		OperationID: "addPasskeyApproveBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/add-passkey/approve/begin",
		Summary:     "Begin approving a passkey being added",
		Description: "After navigator.credentials.create() for an add-passkey ceremony: send the new credential. The server " +
			"parses it, draws a nonce and returns request options for your existing passkeys whose challenge commits to " +
			"the new credential id and public key (`passkey_approval`; see docs/verification.md). Assert with an existing " +
			"passkey and send the result as `approval` to `addPasskeyFinish`. Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: bearer,
		Errors:   append([]int{http.StatusUnauthorized, http.StatusForbidden}, ceremonyErrors...),
	}, h.addPasskeyApproveBegin)

	huma.Register(api, huma.Operation{
		OperationID: "addPasskeyFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/add-passkey/finish",
		Summary:     "Finish adding a passkey",
		Description: "Verifies the attestation against the pending ceremony (which must belong to the signed-in " +
			"user; consumed once) and the approval (an assertion by another passkey of this user over the approval " +
			"challenge of exactly this new passkey; consumed once; 403 `approval_required` without it, " +
			"`approval_mismatch` for another ceremony's or another passkey's, `verification_failed` for a bad one) " +
			"and adds the passkey with its approval, which peers get from the directory. Recorded in the audit log; " +
			"every device of the account gets a `passkey_added` notice in its feed.",
		Tags:          []string{TagAuth},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		Errors:        append([]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusGone}, ceremonyErrors...),
	}, h.addPasskeyFinish)
}

func (h *handler) addPasskeyBegin(ctx context.Context, in *AddPasskeyBeginInput) (*CreationCeremonyOutput, error) {
	p := PrincipalFrom(ctx)
	if in.StepUp != "" {
		if err := h.d.Store.TakeStepUp(ctx, h.stepUpCheck(ctx, in.StepUp, models.StepUpAddPasskey, "")); err != nil {
			return nil, h.fail(ctx, err)
		}
	}
	u, err := h.d.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	creds, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	creation, sd, err := h.d.WebAuthn.BeginRegistration(newWAUser(u, creds), webauthn.WithExclusions(credentialDescriptors(creds)))
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("begin add passkey: %w", err))
	}
	return h.saveCreation(ctx, models.CeremonyAddPasskey, u.ID, creation, sd, nil)
}

func (h *handler) addPasskeyApproveBegin(ctx context.Context, in *ApproveBeginInput) (*ApprovalCeremonyOutput, error) {
	p := PrincipalFrom(ctx)
	parsed, err := h.parseCreation(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	att := parsed.Response.AttestationObject.AuthData.AttData
	if len(att.CredentialID) == 0 || len(att.CredentialPublicKey) == 0 {
		return nil, h.fail(ctx, models.Errorf(models.EBADREQUEST, "invalid_credential", "the credential carries no attested credential data"))
	}
	a := &approvalPayload{AddCeremonyID: in.Body.CeremonyID, SessionID: p.SessionID, CredentialID: att.CredentialID,
		PublicKey: att.CredentialPublicKey, Nonce: newNonce()}
	rc, err := h.beginAssertion(ctx, models.CeremonyApprovePasskey, p.UserID, a.challenge(), a)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &ApprovalCeremonyOutput{Body: ApprovalCeremony{RequestCeremony: *rc, PasskeyApproval: PasskeyApprovalOffer{
		Nonce: b64(a.Nonce), CredentialID: b64(a.CredentialID), PublicKey: b64(a.PublicKey)}}}, nil
}

// rawApproval extracts approval.credential of a finish body as sent.
func rawApproval(body []byte) ([]byte, error) {
	var env struct {
		Approval struct {
			Credential json.RawMessage `json:"credential"`
		} `json:"approval"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Approval.Credential) == 0 {
		return nil, models.Errorf(models.EBADREQUEST, "invalid_credential", "the approval has no credential")
	}
	return env.Approval.Credential, nil
}

func (h *handler) addPasskeyFinish(ctx context.Context, in *AddPasskeyFinishInput) (*PasskeyOutput, error) {
	p := PrincipalFrom(ctx)
	if in.Body.Approval == nil {
		return nil, h.fail(ctx, errApprovalRequired)
	}
	name, err := h.passkeyName(in.Body.Name)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	parsed, err := h.parseCreation(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	rawA, err := rawApproval(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	approval, err := parseAssertion(rawA)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	// Both ceremonies are single use: consume them before anything is
	// verified.
	c, err := h.d.Store.ConsumeCeremony(ctx, in.Body.CeremonyID, models.CeremonyAddPasskey)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	ac, err := h.d.Store.ConsumeCeremony(ctx, in.Body.Approval.CeremonyID, models.CeremonyApprovePasskey)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if c.UserID != p.UserID || ac.UserID != p.UserID {
		return nil, h.fail(ctx, store.ErrCeremonyGone)
	}
	var a approvalPayload
	if err := json.Unmarshal(ac.Payload, &a); err != nil {
		return nil, h.fail(ctx, fmt.Errorf("decode ceremony payload: %w", err))
	}
	if a.AddCeremonyID != c.ID || a.SessionID != p.SessionID {
		return nil, h.fail(ctx, errApprovalMismatch)
	}
	sd, err := parseSessionData(c.SessionData)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	asd, err := parseSessionData(ac.SessionData)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if asd.Challenge != b64(a.challenge()) {
		return nil, h.fail(ctx, errors.New("approval ceremony: session challenge is not the approval challenge"))
	}
	u, err := h.d.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	creds, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	cred, err := h.d.WebAuthn.CreateCredential(newWAUser(u, creds), sd, parsed)
	if err != nil {
		h.logCeremonyFailure(ctx, "add passkey", err)
		return nil, h.fail(ctx, ceremonyFailed(err))
	}
	if !bytes.Equal(cred.ID, a.CredentialID) || !bytes.Equal(cred.PublicKey, a.PublicKey) {
		return nil, h.fail(ctx, errApprovalMismatch)
	}
	// The approver must be an existing passkey of this user: the new one is
	// not among them yet, another user's never is.
	v, err := h.verifyAssertion(ctx, "passkey approval", u.ID, asd, approval)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	nc := fromWebAuthn(cred, name)
	ap := sentAssertion(approval, a.Nonce)
	nc.Approval = &ap
	added, err := h.d.Store.AddCredential(ctx, h.actor(ctx, p), u.ID, nc, v.use)
	if errors.Is(err, store.ErrCloneDetected) {
		return nil, h.fail(ctx, h.cloneDetected(ctx, v.passkey, v.passkey.SignCount, approval.Response.AuthenticatorData.Counter))
	}
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &PasskeyOutput{Body: passkeyInfo(*added)}, nil
}
