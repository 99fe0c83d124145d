package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// StepUpHeaderDoc documents the header every stepped-up operation reads.
const stepUpHeaderDoc = "Step-up grant from `stepUpFinish`, made for this operation (and its target: the passkey deleted, " +
	"the user acted on) by this session within the last 60 seconds; single use. Without a valid one: 403 `step_up_required`."

// StepUpBeginInput starts a step-up.
type StepUpBeginInput struct {
	Body struct {
		Operation string `json:"operation" enum:"add_passkey,delete_passkey,end_other_sessions,delete_account,recovery_invite,admin_invite,delete_user" doc:"The account change the step-up is for"`
		PasskeyID string `json:"passkey_id,omitempty" format:"uuid" doc:"For delete_passkey: the passkey to delete (the grant is good for it only)"`
		UserID    string `json:"user_id,omitempty" format:"uuid" doc:"For recovery_invite and delete_user (admins only): the user acted on (the grant is good for them only)"`
	}
}

// StepUpFinishInput completes a step-up.
type StepUpFinishInput struct {
	Body struct {
		CeremonyID string              `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential AssertionCredential `json:"credential" doc:"The result of navigator.credentials.get(), as PublicKeyCredential.toJSON() gives it"`
	}
	RawBody []byte
}

// StepUpGrant is the proof a step-up leaves.
type StepUpGrant struct {
	StepUp    string    `json:"step_up" doc:"Send as the Sovereign-Step-Up header of the operation, once, before expires_at"`
	Operation string    `json:"operation" enum:"add_passkey,delete_passkey,end_other_sessions,delete_account,recovery_invite,admin_invite,delete_user" doc:"The operation it allows"`
	PasskeyID string    `json:"passkey_id,omitempty" format:"uuid" doc:"For delete_passkey: the passkey it allows deleting"`
	UserID    string    `json:"user_id,omitempty" format:"uuid" doc:"For recovery_invite and delete_user: the user it allows acting on"`
	ExpiresAt time.Time `json:"expires_at" doc:"The grant is refused after this time"`
}

// StepUpGrantOutput wraps StepUpGrant.
type StepUpGrantOutput struct {
	Body StepUpGrant
}

// AddPasskeyBeginInput starts adding a passkey after a step-up.
type AddPasskeyBeginInput struct {
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"Optional: a step-up grant from stepUpFinish made for add_passkey by this session within the last 60 seconds, checked and spent when sent (an invalid one: 403 step_up_required). The approval by an existing passkey at addPasskeyFinish is what protects adding a passkey."`
}

// DeletePasskeyInput deletes a passkey after a step-up.
type DeletePasskeyInput struct {
	PasskeyPath
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"Step-up grant from stepUpFinish, made for delete_passkey and this passkey by this session within the last 60 seconds; single use. Without a valid one: 403 step_up_required."`
}

// EndOtherSessionsInput ends the other sessions after a step-up.
type EndOtherSessionsInput struct {
	StepUp                   string    `header:"Sovereign-Step-Up" maxLength:"128" doc:"Step-up grant from stepUpFinish, made for end_other_sessions by this session within the last 60 seconds; single use. Without a valid one: 403 step_up_required."`
	RemovePasskeysAddedAfter time.Time `query:"remove_passkeys_added_after" doc:"Also delete every passkey added after this time (RFC 3339), except the one that made the step-up: for a session token that was stolen and used to add a passkey"`
}

// EndOtherSessionsOutput reports what ended.
type EndOtherSessionsOutput struct {
	Body struct {
		Ended           int `json:"ended" doc:"How many sessions were ended"`
		PasskeysRemoved int `json:"passkeys_removed" doc:"How many passkeys were deleted (remove_passkeys_added_after)"`
	}
}

// RecoverBeginInput starts an account recovery.
type RecoverBeginInput struct {
	Body struct {
		InviteCode string `json:"invite_code" minLength:"1" maxLength:"128" doc:"The recovery invite code an admin made for your account" example:"k3xq-7b2m-a9pd-q4rt-w8yz-c5ne-j6hs-v2lf"`
	}
}

// RecoverFinishInput completes an account recovery.
type RecoverFinishInput struct {
	Body struct {
		CeremonyID  string                `json:"ceremony_id" minLength:"1" maxLength:"64" doc:"Id of the pending ceremony, from the begin step (single use, expires with the challenge)"`
		Credential  AttestationCredential `json:"credential" doc:"The result of navigator.credentials.create(), as PublicKeyCredential.toJSON() gives it"`
		DeviceName  string                `json:"device_name" minLength:"1" maxLength:"64" doc:"Name of this app install, shown in the device list" example:"Alice's new phone"`
		PasskeyName string                `json:"passkey_name,omitempty" maxLength:"64" doc:"Name for the passkey (default: Passkey)" example:"iCloud Keychain"`
	}
	RawBody []byte
}

// recoverPayload is what a recover ceremony remembers.
type recoverPayload struct {
	InviteHash []byte `json:"invite_hash"`
}

// RecoveryInviteInput makes a recovery invite.
type RecoveryInviteInput struct {
	ID     string `path:"id" format:"uuid" doc:"User id"`
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"Step-up grant from stepUpFinish, made by this admin session for recovery_invite and this user within the last 60 seconds; single use. Without a valid one: 403 step_up_required."`
	Body   struct {
		ExpiresInHours int `json:"expires_in_hours,omitempty" minimum:"1" maximum:"168" default:"24" doc:"Hours until the invite stops working (1 hour to 7 days)"`
	}
}

// RecoveryInviteOutput carries the recovery code, shown only here.
type RecoveryInviteOutput struct {
	Body struct {
		Invite AdminInvite `json:"invite"`
		Code   string      `json:"code" doc:"The recovery code. Shown once: the server keeps only its SHA-256. Give it to the user over a channel you trust." example:"k3xq-7b2m-a9pd-q4rt-w8yz-c5ne-j6hs-v2lf"`
		Link   string      `json:"link" format:"uri" doc:"Link that opens the member app's recovery with the code (in the fragment, which browsers never send to servers)"`
	}
}

func (h *handler) registerStepUp(api huma.API) {
	limited := huma.Middlewares{h.limitAuth(api)}
	huma.Register(api, huma.Operation{
		OperationID: "stepUpBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/step-up/begin",
		Summary:     "Begin a step-up",
		Description: "Adding or deleting a passkey, ending all other sessions and deleting the account need more than a " +
			"session token: a fresh assertion by one of the account's passkeys, made for that operation. So do the admin " +
			"operations that could turn a stolen admin token into stolen accounts (a recovery invite, an admin invite, " +
			"deleting a user; 403 `admin_required` for a member). This returns WebAuthn request options " +
			"listing your usable passkeys; the challenge expires after the ceremony timeout (60 s by default). " +
			"Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, h.stepUpBegin)

	huma.Register(api, huma.Operation{
		OperationID: "stepUpFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/step-up/finish",
		Summary:     "Finish a step-up",
		Description: "Verifies the assertion against the pending step-up (which must belong to this session; consumed " +
			"once) and returns a grant for the operation it was begun for: send it as the `Sovereign-Step-Up` header of " +
			"that operation within 60 seconds. A grant is good once, for this session, this operation and its target " +
			"(the passkey deleted, the user acted on).",
		Tags:          []string{TagAuth},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		Errors:        append([]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusGone}, ceremonyErrors...),
	}, h.stepUpFinish)

	huma.Register(api, huma.Operation{
		OperationID: "recoverBegin",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/recover/begin",
		Summary:     "Begin an account recovery",
		Description: "With a recovery invite an admin made for your account (after a device or passkey was lost or " +
			"stolen): returns WebAuthn creation options for a new passkey of that account. Unknown, expired, used-up " +
			"and ordinary invites all answer 403 `invite_invalid`. Rate-limited per client IP.",
		Tags:     []string{TagAuth},
		Security: public,
		Errors:   append([]int{http.StatusForbidden}, ceremonyErrors...),
	}, h.recoverBegin)

	huma.Register(api, huma.Operation{
		OperationID: "recoverFinish",
		Middlewares: limited,
		Method:      http.MethodPost,
		Path:        "/v1/auth/recover/finish",
		Summary:     "Finish an account recovery",
		Description: "Verifies the attestation and, at once: uses up the recovery invite, deletes every passkey of the " +
			"account, ends every session (their tokens answer 401, their streams close), and registers the new passkey " +
			"with a new device and session. Every device of the account gets a notice for each passkey removed and the " +
			"one added. Recorded in the audit log.",
		Tags:          []string{TagAuth},
		Security:      public,
		DefaultStatus: http.StatusCreated,
		Errors:        append([]int{http.StatusForbidden, http.StatusConflict, http.StatusGone}, ceremonyErrors...),
	}, h.recoverFinish)
}

func (h *handler) registerRecoveryAdmin(api huma.API) {
	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID:   "adminCreateRecoveryInvite",
		Method:        http.MethodPost,
		Path:          "/v1/admin/users/{id}/recovery-invite",
		Summary:       "Make a recovery invite for a user",
		DefaultStatus: http.StatusCreated,
		Description: "For a user who lost their passkeys or whose account was taken over: a one-use code (in this " +
			"response only) with which the user registers a new passkey on a clean device (`recoverBegin`); the old " +
			"passkeys and every session end then. Needs a step-up by the admin's own passkey, made for " +
			"recovery_invite and this user (`Sovereign-Step-Up` header; 403 `step_up_required` without a valid one), so a " +
			"stolen admin token alone cannot take an account over. Recorded in the audit log (without the code).",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminCreateRecoveryInvite)
}

func (h *handler) stepUpBegin(ctx context.Context, in *StepUpBeginInput) (*RequestCeremonyOutput, error) {
	p := PrincipalFrom(ctx)
	op := models.StepUpOperation(in.Body.Operation)
	target, err := stepUpTarget(op, in.Body.PasskeyID, in.Body.UserID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if op.AdminOnly() {
		if _, _, err := h.admin(ctx); err != nil {
			return nil, err
		}
	}
	u, err := h.d.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	all, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	var usable []models.Credential
	for _, c := range all {
		if !c.CloneWarning {
			usable = append(usable, c)
		}
	}
	if len(usable) == 0 {
		return nil, h.fail(ctx, models.Errorf(models.EFORBIDDEN, "no_usable_passkey", "your account has no usable passkey: ask an admin for a recovery invite"))
	}
	assertion, sd, err := h.d.WebAuthn.BeginLogin(newWAUser(u, usable))
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("begin step-up: %w", err))
	}
	opts, err := reshape[RequestOptions](assertion.Response)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	c := &models.Ceremony{Kind: models.CeremonyStepUp, UserID: u.ID, Payload: store.StepUpCeremonyPayload(op, target, p.SessionID)}
	if c.SessionData, err = sessionDataJSON(sd); err != nil {
		return nil, h.fail(ctx, err)
	}
	if err := h.d.Store.CreateCeremony(ctx, c, h.ceremonyTTL()); err != nil {
		return nil, h.fail(ctx, err)
	}
	return &RequestCeremonyOutput{Body: RequestCeremony{CeremonyID: c.ID, ExpiresAt: c.ExpiresAt, Options: opts}}, nil
}

func (h *handler) stepUpFinish(ctx context.Context, in *StepUpFinishInput) (*StepUpGrantOutput, error) {
	p := PrincipalFrom(ctx)
	raw, err := rawCredential(in.RawBody)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, h.fail(ctx, malformedCredential(err))
	}
	c, err := h.d.Store.ConsumeCeremony(ctx, in.Body.CeremonyID, models.CeremonyStepUp)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	op, target, sessionID, err := store.ParseStepUpCeremony(c.Payload)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if c.UserID != p.UserID || sessionID != p.SessionID {
		return nil, h.fail(ctx, store.ErrCeremonyGone)
	}
	sd, err := parseSessionData(c.SessionData)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	u, err := h.d.Store.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	creds, err := h.d.Store.CredentialsByUser(ctx, u.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	cred, err := h.d.WebAuthn.ValidateLogin(newWAUser(u, creds), sd, parsed)
	if err != nil {
		h.logCeremonyFailure(ctx, "step-up", err)
		h.auditLoginFailure(ctx, u.ID, err)
		return nil, h.fail(ctx, ceremonyFailed(err))
	}
	var passkey *models.Credential
	for i := range creds {
		if string(creds[i].CredentialID) == string(cred.ID) {
			passkey = &creds[i]
		}
	}
	if passkey == nil {
		return nil, h.fail(ctx, fmt.Errorf("step-up: verified credential not among the user's"))
	}
	if cred.Authenticator.CloneWarning || passkey.CloneWarning {
		return nil, h.fail(ctx, h.cloneDetected(ctx, passkey, cred.Authenticator.SignCount, parsed.Response.AuthenticatorData.Counter))
	}
	token, hash := models.NewToken()
	ttl := h.ceremonyTTL()
	expires, err := h.d.Store.CompleteStepUp(ctx, store.StepUp{UserID: u.ID, SessionID: p.SessionID, PasskeyID: passkey.ID,
		SignCount: cred.Authenticator.SignCount, Flags: uint8(parsed.Response.AuthenticatorData.Flags),
		Operation: op, Target: target, TokenHash: hash, TTL: ttl})
	if errors.Is(err, store.ErrCloneDetected) {
		return nil, h.fail(ctx, h.cloneDetected(ctx, passkey, passkey.SignCount, parsed.Response.AuthenticatorData.Counter))
	}
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	g := StepUpGrant{StepUp: token, Operation: string(op), ExpiresAt: expires}
	if op.TargetsUser() {
		g.UserID = target
	} else {
		g.PasskeyID = target
	}
	return &StepUpGrantOutput{Body: g}, nil
}

// stepUpTarget checks that a step-up names what its operation binds the
// grant to (a passkey, a user, or nothing) and returns it.
func stepUpTarget(op models.StepUpOperation, passkeyID, userID string) (string, error) {
	if op != models.StepUpDeletePasskey && passkeyID != "" {
		return "", models.Errorf(models.EINVALID, "unexpected_passkey_id", "only a delete_passkey step-up names a passkey")
	}
	if !op.TargetsUser() && userID != "" {
		return "", models.Errorf(models.EINVALID, "unexpected_user_id", "only a recovery_invite or delete_user step-up names a user")
	}
	switch {
	case op == models.StepUpDeletePasskey:
		if passkeyID == "" {
			return "", models.Errorf(models.EINVALID, "passkey_id_required", "a delete_passkey step-up names the passkey (passkey_id)")
		}
		return passkeyID, nil
	case op.TargetsUser():
		if userID == "" {
			return "", models.Errorf(models.EINVALID, "user_id_required", "a %s step-up names the user (user_id)", op)
		}
		return userID, nil
	}
	return "", nil
}

// adminStepUp is the step-up check of an admin operation: the grant must be
// this admin session's, for op and target.
func (h *handler) adminStepUp(ctx context.Context, token string, op models.StepUpOperation, target string) *store.StepUpCheck {
	c := h.stepUpCheck(ctx, token, op, target)
	return &c
}

// stepUpRefused records an admin operation refused for want of a valid
// step-up grant (one aggregated audit entry per admin per minute: a stolen
// admin token trying its luck shows in the log) and returns err to answer.
func (h *handler) stepUpRefused(ctx context.Context, actor models.Actor, op models.StepUpOperation, target string, err error) error {
	if errors.Is(err, store.ErrStepUpRequired) {
		detail := map[string]any{"operation": string(op)}
		if target != "" {
			detail["target_id"] = target
		}
		if aerr := h.d.Store.AuditAggregated(ctx, models.AuditEntry{Actor: actor, Action: models.AuditStepUpDenied,
			Detail: detail}, "operation", string(op)); aerr != nil {
			h.log().WarnContext(ctx, "audit step-up denial", "err", aerr)
		}
	}
	return h.fail(ctx, err)
}

func (h *handler) stepUpCheck(ctx context.Context, token string, op models.StepUpOperation, target string) store.StepUpCheck {
	p := PrincipalFrom(ctx)
	return store.StepUpCheck{Token: token, UserID: p.UserID, SessionID: p.SessionID, Operation: op, Target: target}
}

func (h *handler) recoverBegin(ctx context.Context, in *RecoverBeginInput) (*CreationCeremonyOutput, error) {
	hash := models.HashInviteCode(in.Body.InviteCode)
	inv, err := h.d.Store.CheckInvite(ctx, hash)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if inv.RecoveryUserID == "" {
		return nil, h.fail(ctx, store.ErrInviteInvalid)
	}
	u, err := h.d.Store.UserByID(ctx, inv.RecoveryUserID)
	if err != nil {
		return nil, h.fail(ctx, store.ErrInviteInvalid)
	}
	// The old passkeys are about to go: exclude none, so the clean device
	// may even replace one it holds.
	creation, sd, err := h.d.WebAuthn.BeginRegistration(newWAUser(u, nil))
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("begin recovery: %w", err))
	}
	return h.saveCreation(ctx, models.CeremonyRecover, u.ID, creation, sd, recoverPayload{InviteHash: hash})
}

func (h *handler) recoverFinish(ctx context.Context, in *RecoverFinishInput) (*SessionGrantOutput, error) {
	var payload recoverPayload
	f, err := h.startCreationFinish(ctx, in.Body.CeremonyID, models.CeremonyRecover, in.Body.DeviceName, in.Body.PasskeyName, in.RawBody, &payload)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	u, err := h.d.Store.UserByID(ctx, f.ceremony.UserID)
	if err != nil {
		return nil, h.fail(ctx, store.ErrInviteInvalid)
	}
	var cred *webauthn.Credential
	if cred, err = h.d.WebAuthn.CreateCredential(newWAUser(u, nil), f.session, f.parsed); err != nil {
		h.logCeremonyFailure(ctx, "recovery", err)
		return nil, h.fail(ctx, ceremonyFailed(err))
	}
	token, hash := models.NewToken()
	si, err := h.d.Store.RecoverAccount(ctx, store.Recovery{InviteHash: payload.InviteHash, UserID: u.ID,
		Credential: fromWebAuthn(cred, f.passkeyName), DeviceName: f.deviceName, TokenHash: hash,
		SessionTTL: h.d.Config.SessionTTL, ClientIP: h.actor(ctx, nil).IP})
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	h.log().InfoContext(ctx, "account recovered", "user_id", u.ID)
	return grant(token, si), nil
}

func (h *handler) adminCreateRecoveryInvite(ctx context.Context, in *RecoveryInviteInput) (*RecoveryInviteOutput, error) {
	_, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	hours := in.Body.ExpiresInHours
	if hours == 0 {
		hours = 24
	}
	code, inv, err := h.d.Store.CreateRecoveryInvite(ctx, actor, in.ID, time.Duration(hours)*time.Hour,
		h.adminStepUp(ctx, in.StepUp, models.StepUpRecoveryInvite, in.ID))
	if err != nil {
		return nil, h.stepUpRefused(ctx, actor, models.StepUpRecoveryInvite, in.ID, err)
	}
	out := &RecoveryInviteOutput{}
	out.Body.Invite = AdminInvite{ID: inv.ID, Role: string(inv.Role), Status: "active", UsesLeft: inv.UsesLeft,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, CreatedBy: inv.CreatedBy}
	out.Body.Code, out.Body.Link = code, h.d.Config.BaseURL()+"/app/#/recover?code="+code
	return out, nil
}
