package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/descope/virtualwebauthn"
)

// Env is what a scenario runs against.
type Env struct {
	Client *Client
	RP     virtualwebauthn.RelyingParty
	// Proc is the server process when the bench started it (nil with
	// --url): scenarios read its RSS.
	Proc *Process
	// PID is the server's process id for RSS readings (0: unknown).
	PID int
	// NewInvite returns an invite code valid for uses registrations.
	NewInvite func(uses int) (string, error)
	// Par is how many setup requests (registrations, uploads) run at once.
	Par     int
	Machine Machine
}

// Accounts registers n new users through real passkey ceremonies.
func (e *Env) Accounts(ctx context.Context, prefix string, n int) ([]Account, error) {
	if e.NewInvite == nil {
		return nil, errors.New("no way to get invites: pass --invite (a code with enough uses) with --url")
	}
	code, err := e.NewInvite(n)
	if err != nil {
		return nil, fmt.Errorf("invite: %w", err)
	}
	return RegisterMany(ctx, e.Client, e.RP, code, UniquePrefix(prefix), n, e.Par)
}

// newResult starts a scenario's result.
func (e *Env) newResult(name string, params map[string]any) *Result {
	m := e.Machine
	m.LoadAvg = LoadAvg()
	return &Result{Scenario: name, Machine: m, Params: params}
}
