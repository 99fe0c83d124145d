package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/testutil"
	"github.com/sovereign-im/sovereign/testutil/logbuf"
)

// buildBinary compiles the real sovereign binary once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func sovereignBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sovereign-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sovereign")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build sovereign: %v", buildErr)
	}
	return binPath
}

// Process is a running sovereign binary.
type Process struct {
	Cmd  *exec.Cmd
	URL  string
	logs *logbuf.Buffer
	done chan error
}

var listenRE = regexp.MustCompile(`msg="sovereign listening" addr=(\S+)`)

func startBinary(t *testing.T, dataDir string, extra ...string) *Process {
	t.Helper()
	// A long ceremony timeout: on a loaded machine a virtual passkey can
	// take longer than the default 60 s between begin and finish.
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--ceremony-timeout", "10m"}, extra...)
	cmd := exec.Command(sovereignBinary(t), args...)
	cmd.Env = append(os.Environ(), "SOVEREIGN_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, logs: &logbuf.Buffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
	}()
	// Wait closes the pipe: call it only once every line has been read
	// (the process closes stderr when it exits), or the last lines are lost.
	go func() {
		<-logged
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs.String())
		}
	})
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case err := <-p.done:
		t.Fatalf("server exited early: %v\n%s", err, p.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not start\n%s", p.logs.String())
	}
	return p
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

var assetRE = regexp.MustCompile(`(?:src|href)="([^"]+)"`)

func TestBinaryServesAndStopsCleanly(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startBinary(t, dataDir)

	if resp, body := get(t, p.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, p.URL+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}

	committed, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, p.URL+"/openapi.yaml"); !bytes.Equal(body, committed) {
		t.Fatal("served /openapi.yaml differs from the committed openapi.yaml")
	}

	resp, page := get(t, p.URL+"/docs")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs = %d %s: %s (were the assets built? run make assets)", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
		t.Fatalf("docs CSP is not strict: %q", csp)
	}
	refs := assetRE.FindAllStringSubmatch(string(page), -1)
	if len(refs) < 2 {
		t.Fatalf("docs page references %d assets, want script and stylesheet", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Fatalf("docs page loads %q from another host", ref)
		}
		if r, body := get(t, p.URL+ref); r.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("docs asset %s = %d", ref, r.StatusCode)
		}
	}
	if !strings.Contains(string(page), `apiDescriptionUrl="/openapi.yaml"`) {
		t.Fatal("docs page does not read the served spec")
	}

	fi, err := os.Stat(filepath.Join(dataDir, "sovereign.db"))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("database mode %04o, want 0600", m)
	}

	start := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("shutdown took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit within 5 s of SIGTERM")
	}
	if !strings.Contains(p.logs.String(), "stopped") {
		t.Fatalf("no clean stop logged:\n%s", p.logs.String())
	}
}

func TestBadConfigExitsTwoWithOneLine(t *testing.T) {
	tests := []struct {
		args []string
		help string // the command whose -h the line points to
	}{
		{[]string{"serve", "--messages-per-minute", "-5"}, "sovereign serve"},
		{[]string{"serve", "--listen", "not-an-address"}, "sovereign serve"},
		{[]string{"serve", "--rp-id", "10.0.0.1"}, "sovereign serve"},
		{[]string{"serve", "--no-such-flag"}, "sovereign serve"},
		{[]string{"serve", "--rp-origins", "http://chat.example.org"}, "sovereign serve"},
		{[]string{"--max-body-bytes", "lots"}, "sovereign serve"},
		{[]string{"serve", "extra-argument"}, "sovereign serve"},
		{[]string{"invite", "--uses", "many"}, "sovereign invite"},
		{[]string{"invite", "--bogus"}, "sovereign invite"},
		{[]string{"frobnicate"}, "sovereign"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, sovereignBinary(t), append(tt.args, "--data-dir", t.TempDir())...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit = %v, want code 2; stderr: %s", err, stderr.String())
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "sovereign: ") ||
				!strings.HasSuffix(out, "; see `"+tt.help+" -h`\n") || stdout.Len() != 0 {
				t.Fatalf("want one line ending in the help pointer, got stderr %q stdout %q", out, stdout.String())
			}
		})
	}
}

func TestHelpListsCommandsAndFlags(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, err := exec.Command(sovereignBinary(t), args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, c := range []string{"commands:", "serve", "invite", "openapi", "version"} {
			if !strings.Contains(string(out), c) {
				t.Errorf("sovereign %v does not list %q:\n%s", args, c, out)
			}
		}
	}
	out, err := exec.Command(sovereignBinary(t), "serve", "-h").Output()
	if err != nil {
		t.Fatalf("serve -h: %v", err)
	}
	for _, f := range []string{"--listen", "--rp-origins", "SOVEREIGN_DATA_DIR", "--config"} {
		if !strings.Contains(string(out), f) {
			t.Errorf("serve -h does not list %s", f)
		}
	}
}

func TestRefusesWorldReadableDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sovereignBinary(t), "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("started with a world-readable data directory")
	}
	if !strings.Contains(string(out), "chmod 700") {
		t.Fatalf("error does not say how to fix it: %s", out)
	}
}

func TestOpenAPICommandNeedsNoDatabase(t *testing.T) {
	cmd := exec.Command(sovereignBinary(t), "openapi")
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("components:")) && !bytes.Contains(out, []byte("openapi: 3.1.0")) {
		t.Fatalf("not an OpenAPI document: %.200s", out)
	}
	if entries, _ := os.ReadDir(cmd.Dir); len(entries) != 0 {
		t.Fatalf("openapi created files: %v", entries)
	}
}
