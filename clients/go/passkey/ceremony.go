package passkey

import (
	"context"
	"encoding/json"
	"fmt"

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
