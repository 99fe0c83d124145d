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
	// Instances are the clients of every server instance sharing one
	// database (Client is the first); nil or one entry for one server.
	// Scenarios spread their senders and subscribers over them.
	Instances []*Client
	// MorePIDs and MoreDebugURLs are the other instances' (their CPU and
	// writer counters are added to the first's).
	MorePIDs      []int
	MoreDebugURLs []string
	// Label names the configuration (e.g. "postgres-2": PostgreSQL, two
	// instances) in scenario names: ingest@postgres-2.
	Label string
	// NetHTTP makes the scenarios' message senders and SSE subscribers use
	// Go's net/http client instead of a lean Sender each: the load
	// generator of the figures before 2026-12-04.
	NetHTTP bool
}

// PostFunc posts a JSON body to path with a bearer token; a non-2xx answer
// is a *StatusError.
type PostFunc func(ctx context.Context, path, token string, body []byte) error

// Poster returns the i-th message sender's way to post (on the instance
// ClientFor(i) names): a Sender of its own over plain HTTP unless
// e.NetHTTP, the shared net/http client otherwise (and for https). Call
// done when the sender stops.
func (e *Env) Poster(i int) (post PostFunc, done func()) {
	c := e.ClientFor(i)
	if !e.NetHTTP {
		if s, err := NewSender(c.Base); err == nil {
			return func(ctx context.Context, path, token string, body []byte) error {
				_, err := s.Post(ctx, path, token, body)
				return err
			}, s.Close
		}
	}
	return func(ctx context.Context, path, token string, body []byte) error {
		_, err := c.Do(ctx, "POST", path, token, body, nil)
		return err
	}, func() {}
}

// OpenSSE opens the i-th subscriber's event stream (see OpenSSE) on the
// instance ClientFor(i) names: over a Sender of its own unless e.NetHTTP
// or the server is reached over https.
func (e *Env) OpenSSE(ctx context.Context, i int, token string, after int64) (*SSE, error) {
	c := e.ClientFor(i)
	if !e.NetHTTP {
		if s, err := NewSender(c.Base); err == nil {
			return OpenSSEWith(ctx, s, token, after)
		}
	}
	return OpenSSE(ctx, c, token, after)
}

// ClientKind names the HTTP client Poster and OpenSSE use: "lean" or
// "net/http".
func (e *Env) ClientKind() string {
	if _, err := NewSender(e.ClientFor(0).Base); err != nil || e.NetHTTP {
		return "net/http"
	}
	return "lean"
}

// ClientFor is the client the i-th sender or subscriber uses: the
// instances in turn.
func (e *Env) ClientFor(i int) *Client {
	if len(e.Instances) == 0 {
		return e.Client
	}
	return e.Instances[i%len(e.Instances)]
}

// serverCPU is the CPU time of every server instance so far.
func (e *Env) serverCPU() procCPU {
	var sum procCPU
	for _, pid := range append([]int{e.PID}, e.MorePIDs...) {
		if pid > 0 {
			c, _ := readProcCPU(pid)
			sum.total += c.total
		}
	}
	return sum
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
	if e.Label != "" {
		name += "@" + e.Label
		params["configuration"] = e.Label
	}
	if len(e.Instances) > 1 {
		params["instances"] = len(e.Instances)
	}
	return &Result{Scenario: name, Machine: m, Params: params}
}

// WriterStats are the server's single-writer counters, as served on
// /debug/writer of its --pprof-listen address.
type WriterStats struct {
	Batches      uint64 `json:"batches"`
	UseCases     uint64 `json:"use_cases"`
	RunningNanos int64  `json:"running_ns"`
	CommitNanos  int64  `json:"commit_ns"`
	// Syncs and SyncNanos are the syncer's fsyncs of the WAL (SQLite at
	// synchronous=FULL, where the commit is pipelined; 0 otherwise).
	Syncs     uint64 `json:"syncs"`
	SyncNanos int64  `json:"sync_ns"`
}

// writerStats reads the writer's counters; ok is false when the server's
// debug listener is unknown or does not answer.
// With several instances the counters of all are added up.
func (e *Env) writerStats(ctx context.Context) (st WriterStats, ok bool) {
	if e.DebugURL == "" {
		return st, false
	}
	for _, u := range append([]string{e.DebugURL}, e.MoreDebugURLs...) {
		one, ok := readWriterStats(ctx, u)
		if !ok {
			return st, false
		}
		st.Batches += one.Batches
		st.UseCases += one.UseCases
		st.RunningNanos += one.RunningNanos
		st.CommitNanos += one.CommitNanos
		st.Syncs += one.Syncs
		st.SyncNanos += one.SyncNanos
	}
	return st, true
}

func readWriterStats(ctx context.Context, debugURL string) (st WriterStats, ok bool) {
	req, err := http.NewRequestWithContext(ctx, "GET", debugURL+"/debug/writer", nil)
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
	if syncs := float64(b.Syncs - a.Syncs); syncs > 0 {
		// The pipelined commit: the fsync runs beside the writer.
		sync := time.Duration(b.SyncNanos - a.SyncNanos)
		r.Add("syncer fsyncs/s (beside the writer)", syncs/elapsed.Seconds(), "fsync/s", "")
		r.Add("commits per fsync", batches/syncs, "", "")
		r.Add("syncer busy in fsync", sync.Seconds()/elapsed.Seconds()*100, "% of wall time", "")
		r.Add("time per fsync", float64(sync.Microseconds())/syncs/1000, "ms", "")
	}
}
