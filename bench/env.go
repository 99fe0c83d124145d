package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

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
	// DebugURL is the server's --pprof-listen base URL ("" when unknown):
	// scenarios read the writer's counters from it.
	DebugURL string
	// Push is the benchmark's push service (nil unless --push-subscribed).
	Push *PushReceiver
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

// WriterStats are the server's single-writer counters, as served on
// /debug/writer of its --pprof-listen address.
type WriterStats struct {
	Batches      uint64 `json:"batches"`
	UseCases     uint64 `json:"use_cases"`
	RunningNanos int64  `json:"running_ns"`
	CommitNanos  int64  `json:"commit_ns"`
}

// writerStats reads the writer's counters; ok is false when the server's
// debug listener is unknown or does not answer.
func (e *Env) writerStats(ctx context.Context) (st WriterStats, ok bool) {
	if e.DebugURL == "" {
		return st, false
	}
	req, err := http.NewRequestWithContext(ctx, "GET", e.DebugURL+"/debug/writer", nil)
	if err != nil {
		return st, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// addWriterStats reports what the single writer did between two readings
// taken elapsed apart: commits per second, use cases per commit and how
// busy it was (running use cases, committing).
func addWriterStats(r *Result, a, b WriterStats, elapsed time.Duration) {
	batches := float64(b.Batches - a.Batches)
	if batches <= 0 {
		return
	}
	useCases := float64(b.UseCases - a.UseCases)
	run := time.Duration(b.RunningNanos - a.RunningNanos)
	commit := time.Duration(b.CommitNanos - a.CommitNanos)
	r.Add("writer commits/s", batches/elapsed.Seconds(), "commit/s", "")
	r.Add("writer use cases per commit", useCases/batches, "", "")
	r.Add("writer busy running use cases", run.Seconds()/elapsed.Seconds()*100, "% of wall time", "")
	r.Add("writer busy committing (page writes, fsync)", commit.Seconds()/elapsed.Seconds()*100, "% of wall time", "")
	r.Add("writer time per use case", float64(run.Microseconds())/useCases, "µs", "")
	r.Add("writer time per commit", float64(commit.Microseconds())/batches/1000, "ms", "")
}
