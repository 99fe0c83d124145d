package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/server"
)

func newServer(t *testing.T, adminListen string) *server.Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.AdminListen = adminListen
	cfg.Listen = "127.0.0.1:0"
	if err := config.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	app, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	return app
}

func status(t *testing.T, h http.Handler, path string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code
}

// With --admin-listen, the admin UI and API answer only on the admin
// address; the public address answers 404 for them, however the path is
// spelled, and the admin address serves nothing but admin, sign-in and
// health.
func TestAdminListenSeparatesAdminRoutes(t *testing.T) {
	app := newServer(t, "127.0.0.1:0")
	pub, adm := app.Handler(), app.AdminHandler()
	if adm == nil {
		t.Fatal("no admin handler")
	}
	for _, p := range []string{"/admin", "/admin/", "/admin/assets/admin.js", "/v1/admin/stats", "/v1/%61dmin/stats", "/v1/admin"} {
		if got := status(t, pub, p); got != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", p, got)
		}
	}
	for p, want := range map[string]int{
		"/v1/admin/stats":    http.StatusUnauthorized,
		"/v1/%61dmin/stats":  http.StatusUnauthorized,
		"/v1/admin/settings": http.StatusUnauthorized,
		"/healthz":           http.StatusOK,
		"/docs":              http.StatusNotFound,
		"/openapi.yaml":      http.StatusNotFound,
		"/v1/keypackages":    http.StatusNotFound,
	} {
		if got := status(t, adm, p); got != want {
			t.Errorf("admin %s = %d, want %d", p, got, want)
		}
	}
	if got := status(t, pub, "/healthz"); got != http.StatusOK {
		t.Errorf("public /healthz = %d", got)
	}
}

func TestWithoutAdminListenAdminIsOnTheMainAddress(t *testing.T) {
	app := newServer(t, "")
	if app.AdminHandler() != nil {
		t.Fatal("admin handler without --admin-listen")
	}
	if got := status(t, app.Handler(), "/v1/admin/stats"); got != http.StatusUnauthorized {
		t.Fatalf("/v1/admin/stats = %d, want 401", got)
	}
}

// Run listens on both addresses and stops both.
func TestRunServesBothListeners(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	admc := make(chan net.Addr, 1)
	app, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		server.Options{AdminReady: func(a net.Addr) { admc <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pubc, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- app.Run(ctx, func(a net.Addr) { pubc <- a }) }()
	pubAddr, admAddr := <-pubc, <-admc
	get := func(addr net.Addr, path string) int {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(pubAddr, "/v1/admin/stats"); got != http.StatusNotFound {
		t.Errorf("public admin API = %d", got)
	}
	if got := get(admAddr, "/v1/admin/stats"); got != http.StatusUnauthorized {
		t.Errorf("admin API on admin address = %d", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestHSTSWithTLS is finding 11 of issue 19: served over TLS (--tls-cert)
// every answer carries Strict-Transport-Security; over plain http (behind
// a proxy, or on loopback) none does, since the header is only meaningful
// and only safe over TLS.
func TestHSTSWithTLS(t *testing.T) {
	app := newServer(t, "")
	tlsSrv := httptest.NewUnstartedServer(app.Handler())
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plain := httptest.NewServer(app.Handler())
	defer plain.Close()
	for _, tc := range []struct {
		srv  *httptest.Server
		want bool
	}{{tlsSrv, true}, {plain, false}} {
		for _, p := range []string{"/healthz", "/v1/me", "/docs", "/nope"} {
			resp, err := tc.srv.Client().Get(tc.srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("Strict-Transport-Security")
			if (got != "") != tc.want || (tc.want && !strings.HasPrefix(got, "max-age=")) {
				t.Errorf("%s %s: Strict-Transport-Security %q", tc.srv.URL, p, got)
			}
		}
	}
}
