// Package testutil starts real Sovereign servers for tests: a real SQLite
// file in t.TempDir(), the real handler behind httptest.NewServer, an
// adjustable clock, and an HTTP client that validates every response
// against the OpenAPI document.
package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// Clock is real time plus an offset that tests can advance.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the shifted time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Server is a running test server.
type Server struct {
	*httptest.Server
	App    *server.Server
	Store  *store.Store
	Config config.Config
	Clock  *Clock
	// Client validates every response against openapi.yaml.
	Client *http.Client
	t      testing.TB
}

// NewServer starts a server on a fresh data directory. mutate adjusts the
// configuration (which is validated like the CLI's). The per-IP ceremony
// rate limit is raised so tests can sign in often (every test client has
// the same IP); a test of that limit lowers it again in mutate.
func NewServer(t testing.TB, mutate ...func(*config.Config)) *Server {
	t.Helper()
	return NewServerWith(t, server.Options{}, mutate...)
}

// NewServerWithLog is NewServer with the server's log written to w at the
// given level (a test of what the logs contain).
func NewServerWithLog(t testing.TB, w io.Writer, level slog.Level, mutate ...func(*config.Config)) *Server {
	t.Helper()
	return newServer(t, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), server.Options{}, mutate...)
}

// NewServerWith is NewServer with server options (the clock is the test
// clock; the other options are the caller's, e.g. a push service's roots).
func NewServerWith(t testing.TB, opts server.Options, mutate ...func(*config.Config)) *Server {
	t.Helper()
	return newServer(t, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), opts, mutate...)
}

func newServer(t testing.TB, log *slog.Logger, opts server.Options, mutate ...func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Database = testdb.URL(t)
	cfg.LogLevel = "warn"
	cfg.Limits.AuthRequestsPerMin = 100000
	cfg.Limits.AuthBurst = 100000
	// Tests create groups freely; the tests of the group budgets set the
	// rate they check.
	cfg.Limits.GroupsPerHour = 100000
	for _, m := range mutate {
		m(&cfg)
	}
	if err := config.Validate(&cfg); err != nil {
		t.Fatalf("test config: %v", err)
	}
	clock := &Clock{}
	opts.Now = clock.Now
	app, err := server.New(context.Background(), cfg, log, opts)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	hs := httptest.NewServer(app.Handler())
	s := &Server{Server: hs, App: app, Store: app.Store(), Config: cfg, Clock: clock, t: t}
	s.Client = &http.Client{Transport: &ValidatingTransport{T: t, Base: http.DefaultTransport}}
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		if err := app.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// Account is a signed-in user: a device and a session's bearer token.
type Account struct {
	UserID    string
	DeviceID  string
	Token     string
	Username  string
	SessionID string // set by passkey sign-in helpers
	PasskeyID string // the passkey registered or used (passkey helpers)
}

// SeedAccount creates a user, a device and a session straight in the store,
// for tests of features other than sign-in. Tests of sign-in itself use real
// passkey ceremonies.
func (s *Server) SeedAccount(t testing.TB, username string, role models.Role) Account {
	t.Helper()
	token, hash := models.NewToken()
	var acc Account
	err := s.Store.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		userID, err := store.InsertUser(ctx, tx, username, username, role)
		if err != nil {
			return err
		}
		deviceID, err := store.InsertDevice(ctx, tx, userID, username+"'s test device")
		if err != nil {
			return err
		}
		if _, err := store.InsertSession(ctx, tx, userID, deviceID, hash, s.Config.SessionTTL); err != nil {
			return err
		}
		acc = Account{UserID: userID, DeviceID: deviceID, Token: token, Username: username}
		return nil
	})
	if err != nil {
		t.Fatalf("seed account %s: %v", username, err)
	}
	return acc
}

// Response is a decoded test response.
type Response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v\nbody: %s", r.Request.URL.Path, err, r.Body)
	}
}

// Do sends a request with an optional bearer token and JSON body (a []byte
// body is sent as is) and returns the whole response.
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return &Response{Response: resp, Body: raw}
}

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above testutil")
		}
		dir = parent
	}
}

// Attach returns a client-side Server for a Sovereign process started
// elsewhere (the real binary, a restored data directory): the passkey,
// sign-in and request helpers work against url with cfg's relying party;
// App and Store are nil, so helpers that write to the store directly
// (Invite, SeedAccount) are not available.
func Attach(t testing.TB, url string, cfg config.Config) *Server {
	t.Helper()
	return &Server{Server: &httptest.Server{URL: url}, Config: cfg, Clock: &Clock{}, t: t,
		Client: &http.Client{Transport: &ValidatingTransport{T: t, Base: http.DefaultTransport}}}
}
