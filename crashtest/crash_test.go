// Package crashtest proves that an acknowledged message is never lost: it
// runs the real sovereign binary under steady send load, SIGKILLs it
// mid-stream, restarts it on the same data and checks every message that
// got a 2xx, three rounds.
package crashtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/testutil"
)

const (
	senders = 6
	rounds  = 3
)

var serverFlags = []string{
	"--messages-per-minute", "1000000",
	"--auth-per-minute", "10000", "--auth-burst", "1000",
	"--claims-per-minute", "10000", "--claims-per-target-per-minute", "10000",
}

// acked is a message the server answered 2xx.
type acked struct {
	bench.Receipt
	payloadHash [32]byte
	round       int
}

func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	ctx := context.Background()
	root := testutil.RepoRoot(t)
	bin, err := bench.BuildBinary(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	proc := start(t, bin, dataDir)
	c := bench.NewClient(proc.URL, senders*2)
	accs := register(t, ctx, c, bin, dataDir, senders)
	g, err := bench.CreateGroup(ctx, c, accs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.AddMembers(ctx, c, g, accs[1:], 50, 4); err != nil {
		t.Fatal(err)
	}

	var all []acked
	var maxSeqBefore int64
	totalInDoubt := 0
	for round := 1; round <= rounds; round++ {
		got, inDoubt := sendUntilKilled(t, c, proc, g, accs, round)
		if len(got) == 0 {
			t.Fatalf("round %d: no message was acknowledged before the kill", round)
		}
		for _, a := range got {
			if a.Seq <= maxSeqBefore {
				t.Fatalf("round %d: seq %d reused (an earlier round reached %d)", round, a.Seq, maxSeqBefore)
			}
		}
		all = append(all, got...)
		totalInDoubt += inDoubt
		integrityCheck(t, filepath.Join(dataDir, "sovereign.db"))

		proc = start(t, bin, dataDir)
		c = bench.NewClient(proc.URL, senders*2)
		maxSeqBefore = verify(t, c, g, accs[0], all, totalInDoubt)
		t.Logf("round %d: %d messages acknowledged before SIGKILL (%d in flight), all present once after restart; max seq %d",
			round, len(got), inDoubt, maxSeqBefore)
	}
	if err := proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	integrityCheck(t, filepath.Join(dataDir, "sovereign.db"))
}

// register signs n users up through real passkey ceremonies, with an
// invite made by `sovereign invite` on the server's data directory.
func register(t *testing.T, ctx context.Context, c *bench.Client, bin, dataDir string, n int) []bench.Account {
	t.Helper()
	code, err := bench.Invite(bin, dataDir, false, n)
	if err != nil {
		t.Fatal(err)
	}
	// The server derives its origin from --listen: localhost on its port.
	rp, err := bench.RelyingParty("http://localhost" + c.Base[strings.LastIndex(c.Base, ":"):])
	if err != nil {
		t.Fatal(err)
	}
	accs, err := bench.RegisterMany(ctx, c, rp, code, "crash", n, 4)
	if err != nil {
		t.Fatal(err)
	}
	return accs
}

func start(t *testing.T, bin, dataDir string, extra ...string) *bench.Process {
	t.Helper()
	p, err := bench.Start(context.Background(), bin, dataDir, append(append([]string{}, serverFlags...), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Kill()
		}
		if t.Failed() {
			t.Logf("server log (%s):\n%s", p.URL, tail(p.Logs(), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// sendUntilKilled runs the senders against proc and SIGKILLs it while they
// send. It returns the acknowledged messages and how many requests were
// still unanswered when the server died.
func sendUntilKilled(t *testing.T, c *bench.Client, proc *bench.Process, g *bench.Group, accs []bench.Account, round int) ([]acked, int) {
	t.Helper()
	var (
		mu      sync.Mutex
		got     []acked
		inDoubt int
		wg      sync.WaitGroup
		started = make(chan struct{}, len(accs))
	)
	for _, a := range accs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				body := bench.MessageBody(g, nil, 512)
				r, err := bench.Send(context.Background(), c, g, a, body)
				if err != nil {
					var se *bench.StatusError
					if errors.As(err, &se) {
						t.Errorf("send got %d before the kill: %s", se.Status, se.Body)
					} else {
						mu.Lock()
						inDoubt++ // transport error: the server died with it in flight
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				got = append(got, acked{Receipt: r, payloadHash: hashPayload(body), round: round})
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
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return got, inDoubt
}

// hashPayload hashes the MLS message inside a send body.
func hashPayload(body []byte) [32]byte {
	// body is {"message":"<base64>"}
	const prefix = `{"message":"`
	enc := string(body[len(prefix) : len(body)-2])
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		panic(err)
	}
	return sha256.Sum256(raw)
}

type event struct {
	Seq     int64  `json:"seq"`
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Payload []byte `json:"payload"`
}

// verify reads the whole history and checks every acknowledged message is
// there exactly once with its id and seq, and that seqs never repeat. It
// returns the highest seq.
func verify(t *testing.T, c *bench.Client, g *bench.Group, reader bench.Account, all []acked, inDoubt int) int64 {
	t.Helper()
	byID := map[string]event{}
	byPayload := map[[32]byte]int{}
	var after, last int64
	for {
		var page struct {
			Events  []event `json:"events"`
			Next    int64   `json:"next"`
			HasMore bool    `json:"has_more"`
		}
		q := url.Values{"after": {itoa(after)}, "limit": {"1000"}}
		if _, err := c.Do(context.Background(), "GET", g.Path+"/messages?"+q.Encode(), reader.Token, nil, &page); err != nil {
			t.Fatalf("history: %v", err)
		}
		for _, e := range page.Events {
			if e.Seq <= last {
				t.Fatalf("history: seq %d after %d (a sequence number repeats or goes back)", e.Seq, last)
			}
			last = e.Seq
			if _, dup := byID[e.ID]; dup {
				t.Fatalf("history: id %s twice", e.ID)
			}
			byID[e.ID] = e
			if e.Kind == "application" {
				byPayload[sha256.Sum256(e.Payload)]++
			}
		}
		after = page.Next
		if !page.HasMore {
			break
		}
	}
	for _, a := range all {
		e, ok := byID[a.ID]
		if !ok {
			t.Fatalf("acknowledged message %s (seq %d, round %d) is missing after the restart", a.ID, a.Seq, a.round)
		}
		if e.Seq != a.Seq {
			t.Fatalf("message %s: acknowledged with seq %d, stored with seq %d", a.ID, a.Seq, e.Seq)
		}
		if sha256.Sum256(e.Payload) != a.payloadHash {
			t.Fatalf("message %s: stored payload differs from the one sent", a.ID)
		}
		if n := byPayload[a.payloadHash]; n != 1 {
			t.Fatalf("message %s: its payload is stored %d times", a.ID, n)
		}
	}
	// Stored application messages are the acknowledged ones plus at most
	// the ones in flight when the server died.
	apps := 0
	for _, n := range byPayload {
		apps += n
	}
	if apps < len(all) || apps > len(all)+inDoubt {
		t.Fatalf("history holds %d application messages; %d were acknowledged, at most %d more were in flight", apps, len(all), inDoubt)
	}
	return last
}

// integrityCheck opens the database read-only and runs PRAGMA
// integrity_check.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check: %s", res)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
