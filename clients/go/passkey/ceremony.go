package passkey

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/sovereign-im/sovereign/clients/go/sovereign"
)

// Registration is what Register needs besides the authenticator.
type Registration struct {
	// InviteCode is required unless the server runs with open registration.
	InviteCode string
	// Username: 3 to 32 characters of a-z, 0-9, '.', '_' and '-'.
	Username string
	// DisplayName is shown to others (default: Username).
	DisplayName string
	// DeviceName names this device (this program) in the device list.
	DeviceName string
	// PasskeyName names the passkey (default on the server: "Passkey").
	PasskeyName string
}

// Register signs a new user up on c's server: the begin step, a new
// passkey's attestation from a, the finish step. It returns the session
// grant (token, user, device) for the new device.
func Register(ctx context.Context, c *sovereign.ClientWithResponses, a *Authenticator, r Registration) (*sovereign.SessionGrant, error) {
	in := sovereign.RegisterBeginInputBody{Username: r.Username, DisplayName: r.DisplayName}
	if in.DisplayName == "" {
		in.DisplayName = r.Username
	}
	if r.InviteCode != "" {
		in.InviteCode = &r.InviteCode
	}
	begin, err := c.RegisterBeginWithResponse(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("register %s: begin: %w", r.Username, err)
	}
	if begin.JSON200 == nil {
		return nil, fmt.Errorf("register %s: begin: %w", r.Username, answerError(begin.HTTPResponse, begin.Body))
	}
	options, err := rawOptions(begin.Body)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", r.Username, err)
	}
	att, err := a.Create(options)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", r.Username, err)
	}
	var cred sovereign.AttestationCredential
	if err := json.Unmarshal(att, &cred); err != nil {
		return nil, fmt.Errorf("register %s: attestation: %w", r.Username, err)
	}
	fin := sovereign.RegisterFinishInputBody{CeremonyId: begin.JSON200.CeremonyId, Credential: cred, DeviceName: r.DeviceName}
	if r.PasskeyName != "" {
		fin.PasskeyName = &r.PasskeyName
	}
	done, err := c.RegisterFinishWithResponse(ctx, fin)
	if err != nil {
		return nil, fmt.Errorf("register %s: finish: %w", r.Username, err)
	}
	if done.JSON201 == nil {
		return nil, fmt.Errorf("register %s: finish: %w", r.Username, answerError(done.HTTPResponse, done.Body))
	}
	return done.JSON201, nil
}

// LoginOptions is what Login needs besides the authenticator.
type LoginOptions struct {
	// Username logs in as this user; empty: a discoverable login (the
	// authenticator picks its newest passkey for the server).
	Username string
	// DeviceID signs in again as this existing device (it keeps its key
	// packages and groups); otherwise DeviceName names a new device.
	DeviceID   string
	DeviceName string
}

// Login signs in with a passkey a holds and returns the new session.
func Login(ctx context.Context, c *sovereign.ClientWithResponses, a *Authenticator, l LoginOptions) (*sovereign.SessionGrant, error) {
	in := sovereign.LoginBeginInputBody{}
	if l.Username != "" {
		in.Username = &l.Username
	}
	begin, err := c.LoginBeginWithResponse(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("login: begin: %w", err)
	}
	if begin.JSON200 == nil {
		return nil, fmt.Errorf("login: begin: %w", answerError(begin.HTTPResponse, begin.Body))
	}
	options, err := rawOptions(begin.Body)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	asr, err := a.Get(options)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	var cred sovereign.AssertionCredential
	if err := json.Unmarshal(asr, &cred); err != nil {
		return nil, fmt.Errorf("login: assertion: %w", err)
	}
	fin := sovereign.LoginFinishInputBody{CeremonyId: begin.JSON200.CeremonyId, Credential: cred}
	switch {
	case l.DeviceID != "":
		fin.DeviceId = &l.DeviceID
	default:
		name := l.DeviceName
		if name == "" {
			name = "passkey login"
		}
		fin.DeviceName = &name
	}
	done, err := c.LoginFinishWithResponse(ctx, fin)
	if err != nil {
		return nil, fmt.Errorf("login: finish: %w", err)
	}
	if done.JSON200 == nil {
		return nil, fmt.Errorf("login: finish: %w", answerError(done.HTTPResponse, done.Body))
	}
	return done.JSON200, nil
}

// rawOptions takes the options of a begin answer exactly as sent.
func rawOptions(body []byte) (json.RawMessage, error) {
	var b struct {
		Options json.RawMessage `json:"options"`
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Options) == 0 {
		return nil, fmt.Errorf("begin answer without options: %v", err)
	}
	return b.Options, nil
}

// StepUp proves with a fresh assertion by one of the account's passkeys
// (held by a) that the owner is present, for one account change: the
// server refuses adding or deleting a passkey and ending the other sessions
// on a session token alone. It returns the single-use grant (good for 60 s)
// for that operation's Sovereign-Step-Up header. passkeyID names the
// passkey of a delete_passkey step-up.
func StepUp(ctx context.Context, c *sovereign.ClientWithResponses, a *Authenticator, token string, op sovereign.StepUpBeginInputBodyOperation, passkeyID *openapi_types.UUID) (string, error) {
	auth := sovereign.Bearer(token)
	begin, err := c.StepUpBeginWithResponse(ctx, sovereign.StepUpBeginInputBody{Operation: op, PasskeyId: passkeyID}, auth)
	if err != nil {
		return "", fmt.Errorf("step-up %s: begin: %w", op, err)
	}
	if begin.JSON200 == nil {
		return "", fmt.Errorf("step-up %s: begin: %w", op, answerError(begin.HTTPResponse, begin.Body))
	}
	options, err := rawOptions(begin.Body)
	if err != nil {
		return "", fmt.Errorf("step-up %s: %w", op, err)
	}
	asr, err := a.Get(options)
	if err != nil {
		return "", fmt.Errorf("step-up %s: %w", op, err)
	}
	var cred sovereign.AssertionCredential
	if err := json.Unmarshal(asr, &cred); err != nil {
		return "", fmt.Errorf("step-up %s: assertion: %w", op, err)
	}
	done, err := c.StepUpFinishWithResponse(ctx, sovereign.StepUpFinishInputBody{CeremonyId: begin.JSON200.CeremonyId, Credential: cred}, auth)
	if err != nil {
		return "", fmt.Errorf("step-up %s: finish: %w", op, err)
	}
	if done.JSON201 == nil {
		return "", fmt.Errorf("step-up %s: finish: %w", op, answerError(done.HTTPResponse, done.Body))
	}
	return done.JSON201.StepUp, nil
}

// AddPasskey adds a passkey to the signed-in account: a step-up with a
// passkey existing holds, then the creation of a new passkey by fresh
// (which may be the same authenticator). name may be empty.
func AddPasskey(ctx context.Context, c *sovereign.ClientWithResponses, existing, fresh *Authenticator, token, name string) (*sovereign.PasskeyInfo, error) {
	grant, err := StepUp(ctx, c, existing, token, sovereign.StepUpBeginInputBodyOperationAddPasskey, nil)
	if err != nil {
		return nil, err
	}
	auth := sovereign.Bearer(token)
	begin, err := c.AddPasskeyBeginWithResponse(ctx, &sovereign.AddPasskeyBeginParams{SovereignStepUp: &grant}, auth)
	if err != nil {
		return nil, fmt.Errorf("add passkey: begin: %w", err)
	}
	if begin.JSON200 == nil {
		return nil, fmt.Errorf("add passkey: begin: %w", answerError(begin.HTTPResponse, begin.Body))
	}
	options, err := rawOptions(begin.Body)
	if err != nil {
		return nil, fmt.Errorf("add passkey: %w", err)
	}
	att, err := fresh.Create(options)
	if err != nil {
		return nil, fmt.Errorf("add passkey: %w", err)
	}
	var cred sovereign.AttestationCredential
	if err := json.Unmarshal(att, &cred); err != nil {
		return nil, fmt.Errorf("add passkey: attestation: %w", err)
	}
	fin := sovereign.AddPasskeyFinishInputBody{CeremonyId: begin.JSON200.CeremonyId, Credential: cred}
	if name != "" {
		fin.Name = &name
	}
	done, err := c.AddPasskeyFinishWithResponse(ctx, fin, auth)
	if err != nil {
		return nil, fmt.Errorf("add passkey: finish: %w", err)
	}
	if done.JSON201 == nil {
		return nil, fmt.Errorf("add passkey: finish: %w", answerError(done.HTTPResponse, done.Body))
	}
	return done.JSON201, nil
}

// DeletePasskey deletes a passkey of the signed-in account after a step-up
// with a passkey a holds (never the last usable one: 409 last_passkey).
func DeletePasskey(ctx context.Context, c *sovereign.ClientWithResponses, a *Authenticator, token string, passkeyID openapi_types.UUID) error {
	grant, err := StepUp(ctx, c, a, token, sovereign.StepUpBeginInputBodyOperationDeletePasskey, &passkeyID)
	if err != nil {
		return err
	}
	r, err := c.DeleteMyPasskeyWithResponse(ctx, passkeyID, &sovereign.DeleteMyPasskeyParams{SovereignStepUp: &grant}, sovereign.Bearer(token))
	if err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	if r.StatusCode() != 204 {
		return fmt.Errorf("delete passkey: %w", answerError(r.HTTPResponse, r.Body))
	}
	return nil
}

// EndOtherSessions ends every other session of the signed-in account after
// a step-up with a passkey a holds; with removeAddedAfter, the passkeys
// added after that time go too (except the one that made the step-up).
func EndOtherSessions(ctx context.Context, c *sovereign.ClientWithResponses, a *Authenticator, token string, removeAddedAfter *time.Time) (*sovereign.EndOtherSessionsOutputBody, error) {
	grant, err := StepUp(ctx, c, a, token, sovereign.StepUpBeginInputBodyOperationEndOtherSessions, nil)
	if err != nil {
		return nil, err
	}
	r, err := c.EndMyOtherSessionsWithResponse(ctx, &sovereign.EndMyOtherSessionsParams{SovereignStepUp: &grant,
		RemovePasskeysAddedAfter: removeAddedAfter}, sovereign.Bearer(token))
	if err != nil {
		return nil, fmt.Errorf("end other sessions: %w", err)
	}
	if r.JSON200 == nil {
		return nil, fmt.Errorf("end other sessions: %w", answerError(r.HTTPResponse, r.Body))
	}
	return r.JSON200, nil
}
