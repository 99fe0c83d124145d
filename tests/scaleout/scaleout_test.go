package scaleout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

const (
	orderSenders  = 8
	orderMessages = 200 // per sender
)

// TestPostgresTwoInstancesDeliverInOrder: 8 senders each send 200
// messages, alternating between instance A and instance B, all at once. A
// member's SSE stream open on A, and another member's long-poll loop on B
// (which moves its cursor past what it read, so a seq committed late below
// it would be skipped for good), each receive every acknowledged message
// exactly once, in seq order, with nothing they were not sent.
func TestPostgresTwoInstancesDeliverInOrder(t *testing.T) {
	c := newCluster(t, testdb.Fresh(t), 2)
	ctx := context.Background()
	accs := c.register("order", false, orderSenders+2)
	g := c.group(accs)
	sseReader, pollReader, senders := accs[orderSenders], accs[orderSenders+1], accs[:orderSenders]

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := bench.OpenSSE(runCtx, c.cl[0], sseReader.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sseGot := make(chan feedEvent, orderSenders*orderMessages+100)
	go func() { _ = readSSE(s, sseGot) }()

	var pollMu sync.Mutex
	var pollGot []int64
	pollDone := make(chan error, 1)
	go func() {
		var after int64
		for runCtx.Err() == nil {
			ans, err := pollEvents(runCtx, c.cl[1], pollReader.Token, after)
			if err != nil {
				if runCtx.Err() == nil {
					pollDone <- err
				}
				return
			}
			pollMu.Lock()
			pollGot = append(pollGot, ans.seqs...)
			pollMu.Unlock()
			after = ans.next
		}
		pollDone <- nil
	}()

	var (
		mu    sync.Mutex
		acked = map[int64]int{} // seq -> instance that accepted it
		wg    sync.WaitGroup
		fail  atomic.Value
	)
	start := time.Now()
	for i, a := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range orderMessages {
				inst := (i + j) % 2
				r, err := bench.Send(ctx, c.cl[inst], g, a, bench.MessageBody(g, nil, 256))
				if err != nil {
					fail.CompareAndSwap(nil, fmt.Sprintf("sender %d message %d on instance %d: %v", i, j, inst, err))
					return
				}
				mu.Lock()
				acked[r.Seq] = inst
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f := fail.Load(); f != nil {
		t.Fatal(f)
	}
	sent := time.Since(start)
	if len(acked) != orderSenders*orderMessages {
		t.Fatalf("%d distinct seqs acknowledged for %d messages", len(acked), orderSenders*orderMessages)
	}
	want := make([]int64, 0, len(acked))
	byInstance := [2]int{}
	for seq, inst := range acked {
		want = append(want, seq)
		byInstance[inst]++
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })

	// The SSE reader on A.
	var sseSeqs []int64
	deadline := time.After(30 * time.Second)
	for n := 0; n < len(want); {
		select {
		case ev := <-sseGot:
			if len(sseSeqs) > 0 && ev.Seq <= sseSeqs[len(sseSeqs)-1] {
				t.Fatalf("SSE on A: seq %d after %d (out of order or a duplicate)", ev.Seq, sseSeqs[len(sseSeqs)-1])
			}
			sseSeqs = append(sseSeqs, ev.Seq)
			if _, ok := acked[ev.Seq]; ok {
				n++
			} else if ev.Kind == "application" {
				t.Fatalf("SSE on A: application message seq %d that no sender was acknowledged", ev.Seq)
			}
		case <-deadline:
			t.Fatalf("SSE on A: %d of %d acknowledged messages after 30 s; missing: %v", n, len(want), missing(want, sseSeqs, 10))
		}
	}
	// The long-poll reader on B.
	if !waitUntil(30*time.Second, func() bool {
		pollMu.Lock()
		defer pollMu.Unlock()
		return len(missing(want, pollGot, 1)) == 0
	}) {
		pollMu.Lock()
		t.Fatalf("long-poll on B: missing after 30 s: %v", missing(want, pollGot, 10))
	}
	cancel()
	pollMu.Lock()
	defer pollMu.Unlock()
	for i := 1; i < len(pollGot); i++ {
		if pollGot[i] <= pollGot[i-1] {
			t.Fatalf("long-poll on B: seq %d after %d", pollGot[i], pollGot[i-1])
		}
	}
	t.Logf("%d messages (%d accepted by A, %d by B) in %v; SSE on A and long-poll on B each received all %d once, in order (seq %d…%d)",
		len(want), byInstance[0], byInstance[1], sent.Round(time.Millisecond), len(want), want[0], want[len(want)-1])
}

// missing lists up to n of want's seqs that got lacks.
func missing(want, got []int64, n int) []int64 {
	have := make(map[int64]bool, len(got))
	for _, s := range got {
		have[s] = true
	}
	var out []int64
	for _, s := range want {
		if !have[s] {
			out = append(out, s)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

type pollAnswer struct {
	seqs []int64
	next int64
}

// pollEvents long-polls /v1/sync after a cursor (1 s).
func pollEvents(ctx context.Context, c *bench.Client, token string, after int64) (pollAnswer, error) {
	var ans struct {
		Events []feedEvent `json:"events"`
		Next   int64       `json:"next"`
	}
	if _, err := c.Do(ctx, "GET", fmt.Sprintf("/v1/sync?after=%d&timeout=1&limit=500", after), token, nil, &ans); err != nil {
		return pollAnswer{}, err
	}
	out := pollAnswer{next: ans.Next}
	for _, e := range ans.Events {
		out.seqs = append(out.seqs, e.Seq)
	}
	return out, nil
}

const (
	commitRounds     = 20
	commitsPerRound  = 20
	commitCommitters = 4
)

// TestPostgresOneCommitPerEpochAcrossInstances: 20 rounds; in each, 20
// commits at the group's current epoch go out at once, half to A and half
// to B, from four member devices. Exactly one is accepted and the others
// get 409 epoch_mismatch naming the new epoch.
func TestPostgresOneCommitPerEpochAcrossInstances(t *testing.T) {
	c := newCluster(t, testdb.Fresh(t), 2)
	ctx := context.Background()
	accs := c.register("epoch", false, commitCommitters)
	g := c.group(accs)
	winsBy := [2]int{}
	for round := range commitRounds {
		epoch := g.Epoch
		type outcome struct {
			inst   int
			status int
			code   string
			epoch  uint64
		}
		res := make([]outcome, commitsPerRound)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range commitsPerRound {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inst := i % 2
				body := map[string]any{"commit": mlstest.PrivateMessage(g.ID, epoch, mls.ContentCommit, nil, 128)}
				var ans struct {
					Epoch uint64 `json:"epoch"`
				}
				<-gate
				st, err := c.cl[inst].Do(ctx, "POST", g.Path+"/commits", accs[i%commitCommitters].Token, body, &ans)
				res[i] = outcome{inst: inst, status: st, epoch: ans.Epoch}
				var se *bench.StatusError
				if errors.As(err, &se) {
					res[i].code = problemCode(se.Body)
				} else if err != nil {
					res[i].code = err.Error()
				}
			}()
		}
		close(gate)
		wg.Wait()
		winners := 0
		for _, r := range res {
			switch {
			case r.status/100 == 2:
				winners++
				winsBy[r.inst]++
				if r.epoch != epoch+1 {
					t.Fatalf("round %d: winner answered epoch %d, want %d", round, r.epoch, epoch+1)
				}
			case r.status == 409 && r.code == "epoch_mismatch":
			default:
				t.Fatalf("round %d: a losing commit got %d %q, want 409 epoch_mismatch", round, r.status, r.code)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d at epoch %d: %d commits accepted, want exactly 1", round, epoch, winners)
		}
		g.Epoch = epoch + 1
	}
	// Both instances see the same final epoch.
	for i := range 2 {
		var info struct {
			Epoch uint64 `json:"epoch"`
		}
		if _, err := c.cl[i].Do(ctx, "GET", g.Path, accs[0].Token, nil, &info); err != nil {
			t.Fatal(err)
		}
		if info.Epoch != g.Epoch {
			t.Fatalf("instance %d reports epoch %d, want %d", i, info.Epoch, g.Epoch)
		}
	}
	t.Logf("%d rounds × %d concurrent commits: one winner each (A won %d, B won %d); final epoch %d",
		commitRounds, commitsPerRound, winsBy[0], winsBy[1], g.Epoch)
}
