// Package passkey is a virtual passkey authenticator for tests and bots:
// it answers the server's WebAuthn creation and request options with real
// attestations and assertions (P-256, ES256) that the server verifies like
// any other, and runs the registration and login ceremonies through the
// generated client.
//
// Its private keys live in memory (export them with Credentials to keep a
// bot's identity across restarts). Never use it where a person's passkey
// belongs: apps use the platform's authenticator.
//
// It is built on github.com/descope/virtualwebauthn and mends what that
// library leaves to its callers: keys whose P-256 coordinates would encode
// shorter than 32 bytes (which servers rightly refuse) are drawn again; the
// user handle is sent, so discoverable login works; the signature counter
// grows with every assertion; a discoverable login picks the credential
// for the relying party itself.
package passkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/descope/virtualwebauthn"
)

// Credential is one passkey the authenticator holds, in a form that
// marshals to JSON for safekeeping (it contains the private key).
type Credential struct {
	// ID is the credential id.
	ID []byte `json:"id"`
	// RPID is the relying party the passkey belongs to (the server's domain).
	RPID string `json:"rp_id"`
	// UserHandle is the WebAuthn user handle the server gave at creation.
	UserHandle []byte `json:"user_handle"`
	// UserName is the account name from the creation options.
	UserName string `json:"user_name,omitempty"`
	// PrivateKey is the P-256 private key, PKCS #8 DER.
	PrivateKey []byte `json:"private_key"`
	// Counter is the signature counter of the last assertion.
	Counter uint32 `json:"counter"`
}

// Options change how the authenticator answers, to play other kinds of
// authenticators in tests.
type Options struct {
	// UserNotVerified clears the UV flag (the server requires it: tests
	// use this to watch a ceremony fail).
	UserNotVerified bool
	// BackupEligible and BackupState set the BE and BS flags, as synced
	// passkeys do.
	BackupEligible, BackupState bool
	// FixedCounter keeps the signature counter at its value instead of
	// incrementing it (a synced passkey keeps 0; a clone repeats a value).
	FixedCounter bool
}

// Authenticator holds passkeys for one origin. It is safe for concurrent use.
type Authenticator struct {
	rp   virtualwebauthn.RelyingParty
	opts Options

	mu    sync.Mutex
	aag   [16]byte
	creds []Credential
}

// New returns an authenticator for a server's WebAuthn origin (e.g.
// https://chat.example.org): the RP ID is its host, as a browser would
// derive it.
func New(origin string, opts Options) (*Authenticator, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("passkey: bad origin %q", origin)
	}
	a := &Authenticator{rp: virtualwebauthn.RelyingParty{ID: u.Hostname(), Name: u.Hostname(), Origin: origin}, opts: opts}
	if _, err := rand.Read(a.aag[:]); err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return a, nil
}

// RPID is the relying-party id the authenticator signs for.
func (a *Authenticator) RPID() string { return a.rp.ID }

// Credentials returns a copy of every passkey held (with private keys).
func (a *Authenticator) Credentials() []Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Credential, len(a.creds))
	for i, c := range a.creds {
		out[i] = c.clone()
	}
	return out
}

// AddCredential adds a passkey kept from an earlier run.
func (a *Authenticator) AddCredential(c Credential) error {
	if _, err := parseKey(c.PrivateKey); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creds = append(a.creds, c.clone())
	return nil
}

func (c Credential) clone() Credential {
	c.ID = append([]byte(nil), c.ID...)
	c.UserHandle = append([]byte(nil), c.UserHandle...)
	c.PrivateKey = append([]byte(nil), c.PrivateKey...)
	return c
}

func parseKey(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("passkey: private key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("passkey: private key is not P-256")
	}
	return ec, nil
}

// NewP256Key returns a fresh P-256 private key (PKCS #8 DER) whose public
// coordinates are both 32 bytes long as big-endian integers.
// virtualwebauthn writes the COSE key's x and y with big.Int.Bytes, which
// drops leading zero bytes, so about one key in 128 would carry a 31-byte
// coordinate, which a server rightly refuses ("x or y coordinate has
// invalid length"); such keys are drawn again.
func NewP256Key() []byte {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(fmt.Sprintf("passkey: generate key: %v", err)) // crypto/rand does not fail
		}
		if len(k.X.Bytes()) != 32 || len(k.Y.Bytes()) != 32 { //nolint:staticcheck // the library encodes these
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(fmt.Sprintf("passkey: marshal key: %v", err))
		}
		return der
	}
}

// NewCredential is a virtualwebauthn credential on a key from NewP256Key,
// for programs that drive virtualwebauthn themselves.
func NewCredential() virtualwebauthn.Credential {
	return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, NewP256Key())
}

func (a *Authenticator) authenticator(userHandle []byte) virtualwebauthn.Authenticator {
	return virtualwebauthn.Authenticator{
		Options: virtualwebauthn.AuthenticatorOptions{
			UserHandle:      userHandle,
			UserNotVerified: a.opts.UserNotVerified,
			BackupEligible:  a.opts.BackupEligible,
			BackupState:     a.opts.BackupState,
		},
		Aaguid: a.aag,
	}
}

// Create answers creation options (the "options" member of a begin
// response, bare or wrapped in {"publicKey": …}) with a new passkey's
// attestation, as navigator.credentials.create would. A new passkey for the
// same user replaces the old one, as platform authenticators do.
func (a *Authenticator) Create(options json.RawMessage) (json.RawMessage, error) {
	opts, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("passkey: parse creation options: %w", err)
	}
	if opts.RelyingPartyID != "" && opts.RelyingPartyID != a.rp.ID {
		return nil, fmt.Errorf("passkey: creation options for RP %q, authenticator is for %q", opts.RelyingPartyID, a.rp.ID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.creds {
		for _, ex := range opts.ExcludeCredentials {
			if ex == base64.RawURLEncoding.EncodeToString(c.ID) {
				return nil, errors.New("passkey: the authenticator already holds an excluded credential")
			}
		}
	}
	handle := []byte(opts.UserID)
	cred := NewCredential()
	resp := virtualwebauthn.CreateAttestationResponse(a.rp, a.authenticator(handle), cred, *opts)
	stored := Credential{ID: cred.ID, RPID: a.rp.ID, UserHandle: handle, UserName: opts.UserName, PrivateKey: cred.Key.Data}
	kept := a.creds[:0]
	for _, c := range a.creds {
		if c.RPID != a.rp.ID || string(c.UserHandle) != string(handle) {
			kept = append(kept, c)
		}
	}
	a.creds = append(kept, stored)
	return json.RawMessage(resp), nil
}

// Get answers request options with an assertion, as
// navigator.credentials.get would: with a passkey from the options' allow
// list or, for a discoverable login (no list), the newest passkey for the
// relying party. The signature counter grows by one first (unless
// FixedCounter).
func (a *Authenticator) Get(options json.RawMessage) (json.RawMessage, error) {
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("passkey: parse request options: %w", err)
	}
	if opts.RelyingPartyID != "" && opts.RelyingPartyID != a.rp.ID {
		return nil, fmt.Errorf("passkey: request options for RP %q, authenticator is for %q", opts.RelyingPartyID, a.rp.ID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	idx := -1
	for i := len(a.creds) - 1; i >= 0 && idx < 0; i-- {
		c := a.creds[i]
		if c.RPID != a.rp.ID {
			continue
		}
		if len(opts.AllowCredentials) == 0 {
			idx = i
			break
		}
		for _, id := range opts.AllowCredentials {
			if id == base64.RawURLEncoding.EncodeToString(c.ID) {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("passkey: no credential for %s among those allowed", a.rp.ID)
	}
	c := &a.creds[idx]
	if !a.opts.FixedCounter {
		c.Counter++
	}
	vc := virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, c.PrivateKey)
	vc.ID, vc.Counter = c.ID, c.Counter
	// The allow list names the credential virtualwebauthn signs with only
	// through cred; the options go through unchanged.
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(a.rp, a.authenticator(c.UserHandle), vc, *opts)), nil
}
