// Package bench drives a real Sovereign server from outside, over HTTP, as
// clients would: it starts the built binary on a fresh data directory (or
// uses a running server), signs users up, builds groups, sends correctly
// framed MLS messages and measures. cmd/sovereign-bench and the crash test
// (crashtest) are built on it.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildBinary compiles ./cmd/sovereign of the module rooted at repoRoot into
// dir and returns the binary's path. It builds as `make build` and the
// releases do: statically, without cgo (a cgo build maps libc besides,
// about 2 MB more RSS).
func BuildBinary(repoRoot, dir string) (string, error) {
	out := filepath.Join(dir, "sovereign")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/sovereign")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sovereign: %w\n%s", err, stderr.String())
	}
	return out, nil
}

// RepoRoot walks up from the working directory to the directory holding
// go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Process is a sovereign binary started by the bench.
type Process struct {
	Binary  string
	DataDir string
	Args    []string
	URL     string
	cmd     *exec.Cmd
	logs    *logBuffer
	done    chan struct{}
	waitErr error
}

// logBuffer keeps the last part of the server's log.
type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

const maxLog = 1 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > maxLog {
		l.b = append(l.b[:0], l.b[len(l.b)-maxLog/2:]...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// Start runs `binary serve` on dataDir, listening on a free loopback port,
// with extra flags (later flags win, e.g. --log-level), and waits until it
// answers /healthz.
func Start(ctx context.Context, binary, dataDir string, extra ...string) (*Process, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--listen", addr, "--data-dir", dataDir,
		"--log-format", "text", "--log-level", "info"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &Process{Binary: binary, DataDir: dataDir, Args: args, URL: "http://" + addr, cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		// Keep the log, and drain the pipe so the server never blocks on it.
		defer close(copied)
		_, _ = io.Copy(p.logs, stderr)
	}()
	go func() {
		// Wait closes the pipe: only once the log is read to its end (the
		// process closes stderr when it exits), or its last lines are lost.
		<-copied
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("server exited before listening: %v\n%s", p.waitErr, p.logs.String())
		case <-ctx.Done():
			_ = p.Kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Kill()
			return nil, fmt.Errorf("server did not answer /healthz within 30s\n%s", p.logs.String())
		}
	}
}

// FreeLoopbackAddr returns a free loopback host:port (see freePort).
func FreeLoopbackAddr() (string, error) { return freePort() }

// freePort finds a free loopback port (there is a small window in which
// another process could take it; the server then fails to start).
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// PID is the server's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Logs returns the server's log so far (the last MiB).
func (p *Process) Logs() string { return p.logs.String() }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() error {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return nil
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then kills.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("server did not stop within %s; killed", timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// RSS returns a process's resident set size in bytes (VmRSS of
// /proc/<pid>/status).
func RSS(pid int) (int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, errors.New("VmRSS not found")
}

// RaiseFileLimit raises this process's RLIMIT_NOFILE soft limit to its hard
// limit and returns the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// Invite creates an invite with `binary invite` against dataDir (the server
// may be running) and returns its code. extra are more flags, e.g.
// --database for a server on PostgreSQL.
func Invite(binary, dataDir string, admin bool, uses int, extra ...string) (string, error) {
	args := append([]string{"invite", "--data-dir", dataDir, "--uses", strconv.Itoa(uses), "--expires", "24h"}, extra...)
	if admin {
		args = append(args, "--admin")
	}
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sovereign invite: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "Invite code:"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("sovereign invite printed no code: %q", stdout.String())
}
