// Package scaleout runs several real sovereign binaries on one PostgreSQL
// database, as behind a load balancer, and checks what issue 16 promises:
// a stream on one instance sees everything accepted by any instance, in
// order, with no gap and no duplicate; exactly one commit wins each epoch
// across instances; a revocation on one instance closes streams on the
// others within a second; cleanup and the first-admin invite run once.
//
// Every test makes its own database (testdb.Fresh or testdb.Empty) and
// skips when PostgreSQL is not reachable, unless
// SOVEREIGN_TEST_DATABASE=postgres says it must be there.
package scaleout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
)

// serverFlags lift the per-user limits (one test machine is every client).
var serverFlags = []string{
	"--messages-per-minute", "1000000",
	"--auth-per-minute", "10000", "--auth-burst", "1000",
	"--claims-per-minute", "10000", "--claims-per-target-per-minute", "10000",
	"--ceremony-timeout", "10m",
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the real sovereign binary once per test run (not with
// -race: the processes under test are real servers).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := bench.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sovereign-scaleout-")
		if err != nil {
			buildErr = err
			return
		}
		binPath, buildErr = bench.BuildBinary(root, dir)
	})
	if buildErr != nil {
		t.Fatalf("build sovereign: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// cluster is n sovereign processes on one database.
type cluster struct {
	t     *testing.T
	bin   string
	db    string
	dirs  []string
	extra []string
	debug []string // each instance's --pprof-listen address (metrics)
	procs []*bench.Process
	cl    []*bench.Client
}

// newCluster starts n instances on the database url with extra flags.
func newCluster(t *testing.T, url string, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: binary(t), db: url, extra: extra}
	c.procs = make([]*bench.Process, n)
	c.cl = make([]*bench.Client, n)
	for range n {
		d := filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		c.dirs = append(c.dirs, d)
		addr, err := bench.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		c.debug = append(c.debug, addr)
	}
	t.Cleanup(func() {
		for i, p := range c.procs {
			if p != nil && !p.Exited() {
				_ = p.Kill()
			}
			if p != nil && t.Failed() {
				t.Logf("instance %d log (%s):\n%s", i, p.URL, tail(p.Logs(), 6000))
			}
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.startErr(i) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) args(i int) []string {
	return append(append([]string{"--database", c.db, "--pprof-listen", c.debug[i]}, serverFlags...), c.extra...)
}

func (c *cluster) startErr(i int) error {
	p, err := bench.Start(context.Background(), c.bin, c.dirs[i], c.args(i)...)
	if err != nil {
		return err
	}
	c.procs[i], c.cl[i] = p, bench.NewClient(p.URL, 64)
	return nil
}

// restart starts instance i again (after Kill) on its data directory.
func (c *cluster) restart(i int) {
	c.t.Helper()
	if err := c.startErr(i); err != nil {
		c.t.Fatal(err)
	}
}

// invite runs `sovereign invite` against the database.
func (c *cluster) invite(admin bool, uses int) string {
	c.t.Helper()
	args := []string{"invite", "--data-dir", c.dirs[0], "--database", c.db, "--uses", strconv.Itoa(uses), "--expires", "24h"}
	if admin {
		args = append(args, "--admin")
	}
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("sovereign invite: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Invite code:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	c.t.Fatalf("sovereign invite printed no code:\n%s", out)
	return ""
}

// register signs n users up on instance 0 through real passkey ceremonies.
func (c *cluster) register(prefix string, admin bool, n int) []bench.Account {
	c.t.Helper()
	code := c.invite(admin, n)
	base := c.procs[0].URL
	rp, err := bench.RelyingParty("http://localhost" + base[strings.LastIndex(base, ":"):])
	if err != nil {
		c.t.Fatal(err)
	}
	accs, err := bench.RegisterMany(context.Background(), c.cl[0], rp, code, prefix, n, 4)
	if err != nil {
		c.t.Fatal(err)
	}
	return accs
}

// group creates a group of accs[0] on instance 0 and adds the others.
func (c *cluster) group(accs []bench.Account) *bench.Group {
	c.t.Helper()
	ctx := context.Background()
	g, err := bench.CreateGroup(ctx, c.cl[0], accs[0])
	if err != nil {
		c.t.Fatal(err)
	}
	if len(accs) > 1 {
		if err := bench.AddMembers(ctx, c.cl[0], g, accs[1:], 50, 4); err != nil {
			c.t.Fatal(err)
		}
	}
	return g
}

// feedEvent is what the tests read of a feed event.
type feedEvent struct {
	Seq  int64  `json:"seq"`
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// readSSE reads the stream's events into got (events with a seq only) until
// the stream ends; it closes done then with the error that ended it.
func readSSE(s *bench.SSE, got chan<- feedEvent) error {
	for {
		_, data, err := s.Next()
		if err != nil {
			return err
		}
		var ev feedEvent
		if json.Unmarshal(data, &ev) == nil && ev.Seq > 0 {
			got <- ev
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitUntil polls cond every 20 ms until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// metric reads one unlabelled metric of instance i from its debug
// listener's /metrics (-1 when absent).
func (c *cluster) metric(i int, name string) float64 {
	c.t.Helper()
	resp, err := http.Get("http://" + c.debug[i] + "/metrics")
	if err != nil {
		c.t.Fatalf("metrics of instance %d: %v", i, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				c.t.Fatalf("metric %s of instance %d: %q", name, i, rest)
			}
			return v
		}
	}
	return -1
}

// problemCode is the code of an RFC 9457 problem body ("" if none).
func problemCode(body string) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal([]byte(body), &p)
	return p.Code
}
