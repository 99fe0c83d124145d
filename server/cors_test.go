package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/testutil"
)

const appOrigin = "https://app.example.org"

func corsRequest(t *testing.T, s *testutil.Server, method, path, origin string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// preflight is what a browser sends before a cross-origin call with a
// bearer token, an idempotency key or a resume cursor.
func preflight(t *testing.T, s *testutil.Server, path, origin, method string) *http.Response {
	t.Helper()
	return corsRequest(t, s, http.MethodOptions, path, origin,
		"Access-Control-Request-Method", method,
		"Access-Control-Request-Headers", "authorization,content-type,idempotency-key,last-event-id")
}

// TestCORSDefaultNone: without --cors-origins no response carries CORS
// headers, so browsers on other origins cannot read the API.
func TestCORSDefaultNone(t *testing.T) {
	s := testutil.NewServer(t)
	if got := s.Config.CORSOrigins; len(got) != 0 {
		t.Fatalf("default cors origins %v", got)
	}
	for _, r := range []*http.Response{
		preflight(t, s, "/v1/me", appOrigin, http.MethodGet),
		corsRequest(t, s, http.MethodGet, "/healthz", appOrigin),
		corsRequest(t, s, http.MethodGet, "/v1/me", appOrigin),
	} {
		if h := r.Header.Get("Access-Control-Allow-Origin"); h != "" {
			t.Errorf("%s %s: Access-Control-Allow-Origin %q with no --cors-origins", r.Request.Method, r.Request.URL.Path, h)
		}
	}
}

// TestCORSAllowsListedOrigins: preflights from a listed origin are answered
// with what the SDK sends and never allow credentials; real answers name
// the origin and expose Retry-After; other origins and non-API paths get
// nothing.
func TestCORSAllowsListedOrigins(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.CORSOrigins = []string{appOrigin, "http://localhost:5173"} })
	acc, _ := s.RegisterMember(t, "alice")

	r := preflight(t, s, "/v1/groups/abc/messages", appOrigin, http.MethodPost)
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight = %d", r.StatusCode)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != appOrigin {
		t.Errorf("Allow-Origin %q", got)
	}
	if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("Allow-Credentials %q: credentials must never be allowed", got)
	}
	allowed := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "idempotency-key", "last-event-id"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), http.MethodPost) {
		t.Errorf("Allow-Methods %q", r.Header.Get("Access-Control-Allow-Methods"))
	}
	if r.Header.Get("Access-Control-Max-Age") == "" {
		t.Error("preflight not cacheable")
	}

	// The actual request, authenticated with the bearer header.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/me", nil)
	req.Header.Set("Origin", "http://localhost:5173")
	req.Header.Set("Authorization", "Bearer "+acc.Token)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("GET /v1/me from a listed origin: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("Expose-Headers %q", resp.Header.Get("Access-Control-Expose-Headers"))
	}
	if !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Errorf("Vary %q: caches must key on Origin", resp.Header.Get("Vary"))
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials allowed on an actual response")
	}

	// Unlisted origins, and paths outside the API, get no CORS headers.
	for _, r := range []*http.Response{
		preflight(t, s, "/v1/me", "https://evil.example", http.MethodGet),
		corsRequest(t, s, http.MethodGet, "/v1/me", "https://evil.example"),
		corsRequest(t, s, http.MethodGet, "/admin/", appOrigin),
		corsRequest(t, s, http.MethodGet, "/docs", appOrigin),
	} {
		if h := r.Header.Get("Access-Control-Allow-Origin"); h != "" {
			t.Errorf("%s %s from %s: Allow-Origin %q", r.Request.Method, r.Request.URL.Path, r.Request.Header.Get("Origin"), h)
		}
	}
	// The spec is readable from a listed origin (tools, docs renderers elsewhere).
	if h := corsRequest(t, s, http.MethodGet, "/openapi.yaml", appOrigin).Header.Get("Access-Control-Allow-Origin"); h != appOrigin {
		t.Errorf("/openapi.yaml Allow-Origin %q", h)
	}
}

func TestCORSOriginsValidated(t *testing.T) {
	for _, bad := range []string{"app.example.org", "https://app.example.org/path", "*", "ftp://x"} {
		c := config.Default()
		c.CORSOrigins = []string{bad}
		if err := config.Validate(&c); err == nil {
			t.Errorf("--cors-origins %q accepted", bad)
		}
	}
	c := config.Default()
	c.CORSOrigins = []string{"https://app.example.org", "http://localhost:5173"}
	if err := config.Validate(&c); err != nil {
		t.Errorf("good origins refused: %v", err)
	}
}
