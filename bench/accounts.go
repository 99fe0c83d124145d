package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/sovereign-im/sovereign/clients/go/passkey"
)

// Account is a signed-in device of a user.
type Account struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Token    string `json:"-"`
	Username string `json:"username"`
}

// ceremony is a begin answer.
type ceremony struct {
	CeremonyID string          `json:"ceremony_id"`
	Options    json.RawMessage `json:"options"`
}

// grant is a finish answer that opened a session.
type grant struct {
	Token    string `json:"token"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	User     struct {
		Username string `json:"username"`
	} `json:"user"`
}

// RelyingParty returns the WebAuthn relying party a virtual authenticator
// must use for a server: the RP ID is the host of origin.
func RelyingParty(origin string) (virtualwebauthn.RelyingParty, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" {
		return virtualwebauthn.RelyingParty{}, fmt.Errorf("bad origin %q", origin)
	}
	return virtualwebauthn.RelyingParty{ID: u.Hostname(), Name: "Sovereign", Origin: origin}, nil
}

// NewCredential is a virtual P-256 passkey whose public coordinates are
// full length (the Go SDK's passkey.NewCredential: virtualwebauthn alone
// makes about one key in 128 that a server rightly refuses).
func NewCredential() virtualwebauthn.Credential { return passkey.NewCredential() }

// Register signs a new user up through the real passkey registration
// ceremony (a virtual authenticator creates a P-256 passkey and answers the
// server's challenge) and returns the account on its first device.
func Register(ctx context.Context, c *Client, rp virtualwebauthn.RelyingParty, invite, username string) (Account, error) {
	var cer ceremony
	if _, err := c.Do(ctx, "POST", "/v1/auth/register/begin", "", map[string]any{
		"invite_code": invite, "username": username, "display_name": "Bench " + username,
	}, &cer); err != nil {
		return Account{}, fmt.Errorf("register %s: %w", username, err)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(cer.Options))
	if err != nil {
		return Account{}, fmt.Errorf("register %s: parse creation options: %w", username, err)
	}
	cred := NewCredential()
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(opts.UserID)})
	attestation := virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *opts)
	var g grant
	if _, err := c.Do(ctx, "POST", "/v1/auth/register/finish", "", map[string]any{
		"ceremony_id": cer.CeremonyID, "credential": json.RawMessage(attestation), "device_name": "bench " + username,
	}, &g); err != nil {
		return Account{}, fmt.Errorf("register %s: %w", username, err)
	}
	return Account{UserID: g.UserID, DeviceID: g.DeviceID, Token: g.Token, Username: g.User.Username}, nil
}

// RegisterMany registers n users named prefix-0 … prefix-(n-1) with one
// invite (valid for n uses), par at a time.
func RegisterMany(ctx context.Context, c *Client, rp virtualwebauthn.RelyingParty, invite, prefix string, n, par int) ([]Account, error) {
	out := make([]Account, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, err := Register(ctx, c, rp, invite, fmt.Sprintf("%s-%d", prefix, i))
			if err != nil {
				errs <- err
				return
			}
			out[i] = a
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// UniquePrefix is a short username prefix unlikely to be taken on a
// long-running server.
func UniquePrefix(name string) string {
	return fmt.Sprintf("%s%x", name, time.Now().UnixNano()&0xffffff)
}
