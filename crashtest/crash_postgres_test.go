package crashtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/testutil"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestPostgresCrashKeepsAcknowledgedMessages is the crash test on
// PostgreSQL with two instances: senders split across instances A and B
// send steadily; one instance is SIGKILLed mid-stream (A, then B, then A),
// the senders on the other stop, the killed one restarts on the same
// database, and every message either instance acknowledged is in the
// history exactly once, with the seq it was acknowledged with, read
// through both instances. Three rounds.
func TestPostgresCrashKeepsAcknowledgedMessages(t *testing.T) {
	url := testdb.Fresh(t)
	ctx := context.Background()
	bin, err := bench.BuildBinary(testutil.RepoRoot(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var dirs [2]string
	var procs [2]*bench.Process
	var clients [2]*bench.Client
	startAt := func(i int) {
		p := start(t, bin, dirs[i], "--database", url)
		procs[i], clients[i] = p, bench.NewClient(p.URL, senders*2)
	}
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(dirs[i], 0o700); err != nil {
			t.Fatal(err)
		}
		startAt(i)
	}
	accs := registerOn(t, ctx, clients[0], bin, dirs[0], url, senders)
	g, err := bench.CreateGroup(ctx, clients[0], accs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.AddMembers(ctx, clients[0], g, accs[1:], 50, 4); err != nil {
		t.Fatal(err)
	}

	var all []acked
	var maxSeqBefore int64
	totalInDoubt := 0
	for round := 1; round <= rounds; round++ {
		victim := (round + 1) % 2 // A, B, A
		got, inDoubt := sendUntilOneKilled(t, clients, procs[victim], victim, g, accs, round)
		perInstance := [2]int{}
		for _, a := range got {
			if a.Seq <= maxSeqBefore {
				t.Fatalf("round %d: seq %d reused (an earlier round reached %d)", round, a.Seq, maxSeqBefore)
			}
			perInstance[a.instance]++
		}
		if perInstance[victim] == 0 {
			t.Fatalf("round %d: the killed instance acknowledged nothing before the kill", round)
		}
		for _, a := range got {
			all = append(all, a.acked)
		}
		totalInDoubt += inDoubt
		startAt(victim)
		for i := range clients {
			maxSeqBefore = verify(t, clients[i], g, accs[0], all, totalInDoubt)
		}
		t.Logf("round %d: instance %c killed; %d messages acknowledged (A %d, B %d; %d in flight), all present once through both instances; max seq %d",
			round, 'A'+victim, len(got), perInstance[0], perInstance[1], inDoubt, maxSeqBefore)
	}
	for _, p := range procs {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	}
}

// registerOn signs n users up on c with an invite made by `sovereign
// invite` on the shared database.
func registerOn(t *testing.T, ctx context.Context, c *bench.Client, bin, dataDir, database string, n int) []bench.Account {
	t.Helper()
	out, err := exec.Command(bin, "invite", "--data-dir", dataDir, "--database", database,
		"--uses", strconv.Itoa(n), "--expires", "24h").CombinedOutput()
	if err != nil {
		t.Fatalf("sovereign invite: %v\n%s", err, out)
	}
	var code string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Invite code:"); ok {
			code = strings.TrimSpace(rest)
		}
	}
	rp, err := bench.RelyingParty("http://localhost" + c.Base[strings.LastIndex(c.Base, ":"):])
	if err != nil {
		t.Fatal(err)
	}
	accs, err := bench.RegisterMany(ctx, c, rp, code, "pgcrash", n, 4)
	if err != nil {
		t.Fatal(err)
	}
	return accs
}

// ackedOn is an acknowledged message and the instance that acknowledged it.
type ackedOn struct {
	acked
	instance int
}

// sendUntilOneKilled runs the senders, half on each instance, SIGKILLs
// victim while they send, then stops the senders of the other instance.
// It returns the acknowledged messages and how many requests the dead
// instance left unanswered.
func sendUntilOneKilled(t *testing.T, clients [2]*bench.Client, victim *bench.Process, victimIdx int, g *bench.Group, accs []bench.Account, round int) ([]ackedOn, int) {
	t.Helper()
	var (
		mu      sync.Mutex
		got     []ackedOn
		inDoubt int
		wg      sync.WaitGroup
		stop    atomic.Bool
		started = make(chan struct{}, len(accs))
	)
	for i, a := range accs {
		inst := i % 2
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for !stop.Load() {
				body := bench.MessageBody(g, nil, 512)
				r, err := bench.Send(context.Background(), clients[inst], g, a, body)
				if err != nil {
					var se *bench.StatusError
					switch {
					case errors.As(err, &se):
						t.Errorf("send to instance %d got %d: %s", inst, se.Status, se.Body)
					case inst == victimIdx:
						mu.Lock()
						inDoubt++ // the instance died with it in flight
						mu.Unlock()
					default:
						t.Errorf("send to the surviving instance %d: %v", inst, err)
					}
					if first {
						started <- struct{}{}
					}
					return
				}
				mu.Lock()
				got = append(got, ackedOn{acked{Receipt: r, payloadHash: hashPayload(body), round: round}, inst})
				mu.Unlock()
				if first {
					started <- struct{}{}
					first = false
				}
			}
		}()
	}
	for range accs {
		<-started
	}
	time.Sleep(300*time.Millisecond + time.Duration(round)*150*time.Millisecond)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	// The survivor keeps taking messages for a moment while the other is
	// gone, then its senders stop.
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	return got, inDoubt
}
