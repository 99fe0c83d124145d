// Command sovereign-bench measures a real Sovereign server: it starts the
// built binary on a fresh data directory (or uses a running one with --url),
// signs users up through real passkey ceremonies (a virtual WebAuthn
// authenticator), builds groups with framed MLS commits and Welcomes, and
// drives load with correctly framed PrivateMessages (random ciphertext).
//
//	sovereign-bench [flags] [scenario ...]
//
// Scenarios: ingest, capacity, fanout (SSE, then long-poll), wakeup,
// attachments (50 MiB up and down, MiB/s and the server's peak RSS); none
// given runs all. Each prints a table and writes <out>/<scenario>.json.
// docs/benchmarks.md describes them and the figures measured.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sovereign-im/sovereign/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	bin, url, dataDir, invite, origin, out, pprof string
	pid, par                                      int
	serverFlags, cpuProfile                       string
	keep, table, netHTTP                          bool
	databases, instances                          string

	ingest   bench.IngestOptions
	fanout   bench.FanoutOptions
	runs     []bench.FanoutOptions // --fanout-runs, or the one run of fanout
	capacity bench.CapacityOptions
	wakeup   bench.WakeupOptions
	attach   bench.AttachmentOptions
}

// allScenarios is the default order: capacity runs before fanout, whose
// streams (1,000 with --fanout-runs) leave heap the runtime returns to the
// kernel only gradually, which would shrink the RSS capacity measures.
var allScenarios = []string{"ingest", "capacity", "fanout", "wakeup", "attachments"}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("sovereign-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sovereign-bench [flags] [%s ...]\n\nflags:\n", strings.Join(allScenarios, "|"))
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "", "sovereign binary to start (default: go build ./cmd/sovereign into a temp dir)")
	fs.StringVar(&o.url, "url", "", "use this running server instead of starting one (needs --invite; capacity needs --pid)")
	fs.StringVar(&o.invite, "invite", "", "with --url: an invite code with enough uses for every account the scenarios register")
	fs.StringVar(&o.origin, "origin", "http://localhost:8080", "WebAuthn origin the server accepts (its --rp-origins; RP ID is its host)")
	fs.IntVar(&o.pid, "pid", 0, "with --url: the server's pid, to read its RSS")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory of the started server (default: a fresh temp dir, removed afterwards)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp data directory")
	fs.BoolVar(&o.table, "table", false, "print issue #22's table (figure | today | target | measured) after the scenarios")
	fs.StringVar(&o.out, "out", "bench-results", "directory for the JSON results")
	fs.StringVar(&o.pprof, "pprof-listen", "", "start the server with --pprof-listen on this loopback address")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself (not the server) to this file")
	fs.StringVar(&o.serverFlags, "server-flags", "", "extra flags for the started server, space-separated")
	fs.BoolVar(&o.netHTTP, "net-http-client", false, "ingest and fanout: send messages and read SSE streams with Go's net/http client instead of a lean HTTP/1.1 client per sender and stream (the load generator of the figures before 2026-12-04; about twice the client CPU per request)")
	fs.IntVar(&o.par, "setup-parallelism", 8, "concurrent setup requests (sign-ups, key packages)")
	fs.StringVar(&o.databases, "database", "sqlite", "comma-separated engines to measure, one after the other: sqlite (a fresh file), and/or "+
		"a postgres:// URL of a server on which each configuration gets a fresh database (the role needs CREATEDB; dropped afterwards)")
	fs.StringVar(&o.instances, "instances", "1", "with a postgres:// --database: comma-separated instance counts to measure (each a configuration: N servers on one database, load spread over them)")

	concurrency := fs.String("concurrency", "32", "ingest: concurrent senders (each its own user); a comma-separated list runs ingest once per value")
	fs.IntVar(&o.ingest.Groups, "groups", 16, "ingest: groups the senders are spread over")
	fs.IntVar(&o.ingest.Size, "size", 1024, "ingest: MLS message size in bytes")
	fs.DurationVar(&o.ingest.Duration, "duration", 10*time.Second, "ingest: measured time")
	fs.DurationVar(&o.ingest.Warmup, "warmup", 2*time.Second, "ingest: sending before measuring")
	fs.Float64Var(&o.ingest.PushSubscribed, "push-subscribed", 0, "ingest: fraction (0-1) of the senders' devices subscribed to Web Push, sent to a push service the bench runs on loopback")

	fs.IntVar(&o.fanout.Members, "members", 100, "fanout: member devices of the group, each subscribed")
	fs.IntVar(&o.fanout.Rate, "rate", 1000, "fanout: messages published per second")
	fs.IntVar(&o.fanout.Publishers, "publishers", 8, "fanout: concurrent publishing members")
	fs.IntVar(&o.fanout.Size, "fanout-size", 256, "fanout: MLS message size in bytes")
	fs.DurationVar(&o.fanout.Duration, "fanout-duration", 10*time.Second, "fanout: publishing time per transport")
	transports := fs.String("transports", "sse,longpoll", "fanout: transports to measure")
	fanoutRuns := fs.String("fanout-runs", "", "fanout: comma-separated MEMBERSxRATExPUBLISHERS configurations to run one after the other, each with its own group (e.g. 100x8000x32,1000x200x8 for issue #22's two fan-out rows); replaces --members, --rate and --publishers")

	fs.IntVar(&o.capacity.Conns, "conns", 10000, "capacity: idle SSE connections to hold")
	fs.IntVar(&o.capacity.Devices, "conn-devices", 100, "capacity: devices the connections are spread over")
	fs.IntVar(&o.capacity.Par, "conn-parallelism", 200, "capacity: connections being opened at once")
	fs.DurationVar(&o.capacity.HeadersWait, "headers-wait", 30*time.Second, "capacity: longest wait for every stream's headers")

	fs.BoolVar(&o.capacity.Burst, "conn-burst", false, "capacity: write every request without waiting for its answer (a reconnect storm: all requests queue in the server at once)")
	fs.BoolVar(&o.capacity.Broadcast, "broadcast", false, "capacity: put all --conn-devices in one group and, after --hold, send one message and time its arrival on every stream")
	fs.DurationVar(&o.capacity.Hold, "hold", 0, "capacity: keep the connections open this long after measuring (e.g. to take a heap profile)")
	fs.IntVar(&o.wakeup.Samples, "wakeups", 300, "wakeup: samples")
	fs.DurationVar(&o.wakeup.Park, "park", 20*time.Millisecond, "wakeup: how long the poll waits before each send")
	fs.Int64Var(&o.attach.Bytes, "attachment-bytes", 50<<20, "attachments: size of the file uploaded and downloaded")
	fs.Int64Var(&o.attach.PartBytes, "attachment-part-bytes", 1<<20, "attachments: bytes per PUT of the parted upload (the SDK's default)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var concurrencies []int
	for _, f := range strings.Split(*concurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(stderr, "sovereign-bench: --concurrency: %q is not a positive number\n", f)
			return 2
		}
		concurrencies = append(concurrencies, c)
	}
	o.ingest.Concurrency = slices.Max(concurrencies)
	runs, err := parseFanoutRuns(*fanoutRuns, o.fanout)
	if err != nil {
		fmt.Fprintln(stderr, "sovereign-bench: --fanout-runs:", err)
		return 2
	}
	o.runs = runs
	for _, r := range runs {
		o.fanout.Members = max(o.fanout.Members, r.Members) // sizes the server's stream limit
	}
	scenarios := fs.Args()
	if len(scenarios) == 0 {
		scenarios = allScenarios
	}
	for _, s := range scenarios {
		if !contains(allScenarios, s) {
			fmt.Fprintf(stderr, "sovereign-bench: unknown scenario %q (want %s)\n", s, strings.Join(allScenarios, ", "))
			return 2
		}
	}
	if o.url != "" && o.invite == "" {
		fmt.Fprintln(stderr, "sovereign-bench: --url needs --invite (e.g. from `sovereign invite --uses 1000`)")
		return 2
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "sovereign-bench: --cpuprofile:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "sovereign-bench: --cpuprofile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if lim, err := bench.RaiseFileLimit(); err != nil {
		fmt.Fprintln(stderr, "sovereign-bench: raise open-file limit:", err)
	} else if contains(scenarios, "capacity") && lim < uint64(o.capacity.Conns)+512 {
		fmt.Fprintf(stderr, "sovereign-bench: open-file limit %d is below --conns %d: capacity will fail (raise the hard limit)\n", lim, o.capacity.Conns)
	}

	configs, err := configurations(o.databases, o.instances)
	if err != nil {
		fmt.Fprintln(stderr, "sovereign-bench:", err)
		return 2
	}
	if o.url != "" && (len(configs) > 1 || configs[0].url != "") {
		fmt.Fprintln(stderr, "sovereign-bench: --url measures one running server: leave --database and --instances at their defaults")
		return 2
	}
	if o.bin == "" && o.url == "" {
		// Built once for every configuration.
		root, err := bench.RepoRoot()
		if err != nil {
			fmt.Fprintln(stderr, "sovereign-bench: find the repository to build sovereign (or pass --bin):", err)
			return 1
		}
		dir, err := os.MkdirTemp("", "sovereign-bench-bin-")
		if err != nil {
			fmt.Fprintln(stderr, "sovereign-bench:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(stderr, "building sovereign …")
		if o.bin, err = bench.BuildBinary(root, dir); err != nil {
			fmt.Fprintln(stderr, "sovereign-bench:", err)
			return 1
		}
	}
	code := 0
	for _, dbc := range configs {
		if ctx.Err() != nil {
			break
		}
		if len(configs) == 1 {
			dbc.label = ""
		}
		if c := runConfig(ctx, &o, dbc, scenarios, concurrencies, strings.Split(*transports, ","), stdout, stderr); c != 0 {
			code = c
		}
	}
	return code
}

// dbConfig is one measured configuration: an engine and an instance count.
type dbConfig struct {
	label string // sqlite, postgres-1, postgres-2 …
	url   string // "" for SQLite; the PostgreSQL server's URL
	n     int
}

// configurations expands --database and --instances: SQLite runs as one
// instance, each PostgreSQL URL once per instance count.
func configurations(databases, instances string) ([]dbConfig, error) {
	var counts []int
	for _, f := range strings.Split(instances, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return nil, fmt.Errorf("--instances: %q is not a count from 1 to 16", f)
		}
		counts = append(counts, n)
	}
	var out []dbConfig
	for _, d := range strings.Split(databases, ",") {
		d = strings.TrimSpace(d)
		switch {
		case d == "sqlite":
			out = append(out, dbConfig{label: "sqlite", n: 1})
		case strings.HasPrefix(d, "postgres://") || strings.HasPrefix(d, "postgresql://"):
			for _, n := range counts {
				out = append(out, dbConfig{label: fmt.Sprintf("postgres-%d", n), url: d, n: n})
			}
		default:
			return nil, fmt.Errorf("--database: %q is neither sqlite nor a postgres:// URL", d)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--database names no engine")
	}
	return out, nil
}

// runConfig starts the configuration's servers, runs the scenarios against
// them and stops them.
func runConfig(ctx context.Context, o *options, dbc dbConfig, scenarios []string, concurrencies []int, transports []string, stdout, stderr io.Writer) int {
	env, cleanup, err := setup(ctx, o, dbc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "sovereign-bench:", err)
		return 1
	}
	defer cleanup()
	m := env.Machine
	if dbc.label != "" {
		fmt.Fprintf(stdout, "\n#### configuration %s\n", dbc.label)
	}
	fmt.Fprintf(stdout, "machine: %d CPUs (%s), %d MiB, %s, commit %s, %s\n", m.CPUs, m.CPUModel, m.MemoryMiB, m.GoVersion, m.Commit, m.Date)
	// The server's RSS right after start, before any scenario.
	var idleRSS int64
	if env.PID != 0 {
		idleRSS, _ = bench.RSS(env.PID)
	}

	code := 0
	var results []*bench.Result
	if o.table {
		defer func() { bench.PrintIssue22Table(stdout, bench.Issue22Table(results, idleRSS)) }()
	}
	report := func(res *bench.Result, err error) {
		if err != nil {
			fmt.Fprintln(stderr, "sovereign-bench:", err)
			code = 1
			return
		}
		results = append(results, res)
		res.Print(stdout)
		if path, err := res.WriteJSON(o.out); err != nil {
			fmt.Fprintln(stderr, "sovereign-bench: write result:", err)
			code = 1
		} else {
			fmt.Fprintln(stdout, "   →", path)
		}
	}
	for _, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		switch s {
		case "ingest":
			for _, c := range concurrencies {
				ingestOpts := o.ingest
				ingestOpts.Concurrency = c
				res, err := bench.Ingest(ctx, env, ingestOpts)
				if err == nil && len(concurrencies) > 1 {
					res.Scenario = fmt.Sprintf("ingest-c%d", c)
				}
				report(res, err)
			}
		case "fanout":
			for _, run := range o.runs {
				fg, err := bench.BuildFanoutGroup(ctx, env, run.Members)
				if err != nil {
					report(nil, err)
					continue
				}
				for _, tr := range transports {
					fo := run
					fo.Transport = strings.TrimSpace(tr)
					res, err := bench.Fanout(ctx, env, fg, fo)
					if err == nil && len(o.runs) > 1 {
						res.Scenario = fmt.Sprintf("fanout-m%d-%s", run.Members, fo.Transport)
					}
					report(res, err)
				}
			}
		case "capacity":
			report(bench.Capacity(ctx, env, o.capacity))
		case "wakeup":
			report(bench.Wakeup(ctx, env, o.wakeup))
		case "attachments":
			report(bench.Attachments(ctx, env, o.attach))
		}
	}
	if env.Proc != nil && env.Proc.Exited() {
		fmt.Fprintf(stderr, "sovereign-bench: the server exited during the run; its log:\n%s\n", tail(env.Proc.Logs(), 4000))
		code = 1
	}
	return code
}

// setup starts the server (or connects to --url) and returns the
// environment the scenarios share.
func setup(ctx context.Context, o *options, dbc dbConfig, stderr io.Writer) (*bench.Env, func(), error) {
	rp, err := bench.RelyingParty(o.origin)
	if err != nil {
		return nil, nil, err
	}
	env := &bench.Env{RP: rp, Par: o.par, Machine: bench.DescribeMachine(), PID: o.pid, Label: dbc.label, NetHTTP: o.netHTTP}
	if o.url != "" {
		env.Client = bench.NewClient(o.url, 512)
		code := o.invite
		env.NewInvite = func(int) (string, error) { return code, nil }
		return env, func() {}, nil
	}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	bin := o.bin
	dataDir := o.dataDir
	if dataDir != "" && dbc.label != "" {
		dataDir = filepath.Join(dataDir, dbc.label)
	}
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "sovereign-bench-data-")
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		if !o.keep {
			cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
		} else {
			fmt.Fprintln(stderr, "data directory:", dir)
		}
		dataDir = filepath.Join(dir, "data")
	}
	streams := o.capacity.Conns + o.fanout.Members + 1000
	flags := []string{
		"--rp-id", rp.ID, "--rp-origins", rp.Origin,
		"--messages-per-minute", "100000000",
		"--auth-per-minute", "1000000", "--auth-burst", "100000",
		"--claims-per-minute", "1000000", "--claims-per-target-per-minute", "1000000",
		"--streams-per-ip", strconv.Itoa(streams), "--streams-total", strconv.Itoa(streams),
		"--log-level", "warn",
	}
	if o.ingest.PushSubscribed > 0 {
		rx, err := bench.StartPushReceiver()
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, rx.Close)
		env.Push = rx
		flags = append(flags, "--push-allow-hosts", "127.0.0.1")
	}
	var dbFlags []string
	if dbc.url != "" {
		url, drop, err := bench.FreshDatabase(ctx, dbc.url)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, drop)
		dbFlags = []string{"--database", url}
		flags = append(flags, dbFlags...)
	}
	if o.serverFlags != "" {
		flags = append(flags, strings.Fields(o.serverFlags)...)
	}
	dirs := []string{dataDir}
	for i := 1; i < dbc.n; i++ {
		dirs = append(dirs, fmt.Sprintf("%s-%d", dataDir, i))
	}
	for i, dir := range dirs {
		// The debug listener (loopback only) also serves the writer's
		// counters, which the scenarios report; take a free port when
		// none was asked for (and for every instance but the first).
		debugAddr := o.pprof
		if debugAddr == "" || i > 0 {
			if debugAddr, err = bench.FreeLoopbackAddr(); err != nil {
				cleanup()
				return nil, nil, err
			}
		}
		proc, err := bench.Start(ctx, bin, dir, append(append([]string{}, flags...), "--pprof-listen", debugAddr)...)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		cleanups = append(cleanups, func() { _ = proc.Stop(10 * time.Second) })
		client := bench.NewClient(proc.URL, 512)
		if i == 0 {
			env.Proc, env.PID = proc, proc.PID()
			env.DebugURL = "http://" + debugAddr
			env.Client = client
		} else {
			env.MorePIDs = append(env.MorePIDs, proc.PID())
			env.MoreDebugURLs = append(env.MoreDebugURLs, "http://"+debugAddr)
		}
		if dbc.n > 1 {
			env.Instances = append(env.Instances, client)
		}
	}
	env.NewInvite = func(uses int) (string, error) { return bench.Invite(bin, dataDir, false, uses, dbFlags...) }
	return env, cleanup, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// parseFanoutRuns reads --fanout-runs (MEMBERSxRATExPUBLISHERS, comma
// separated) into one set of options per run, the other options taken
// from base; empty, it is the one run base describes.
func parseFanoutRuns(spec string, base bench.FanoutOptions) ([]bench.FanoutOptions, error) {
	if strings.TrimSpace(spec) == "" {
		return []bench.FanoutOptions{base}, nil
	}
	var runs []bench.FanoutOptions
	for _, f := range strings.Split(spec, ",") {
		parts := strings.Split(strings.TrimSpace(f), "x")
		if len(parts) != 3 {
			return nil, fmt.Errorf("%q is not MEMBERSxRATExPUBLISHERS (e.g. 1000x200x8)", f)
		}
		var n [3]int
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("%q: %q is not a positive number", f, p)
			}
			n[i] = v
		}
		run := base
		run.Members, run.Rate, run.Publishers = n[0], n[1], n[2]
		runs = append(runs, run)
	}
	return runs, nil
}
