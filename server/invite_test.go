package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
)

// Invite links (/invite#<code>) lead where registration happens: to the
// admin UI wherever it is served (the fragment survives the redirect), and
// on a public address without the admin UI to a page pointing to the apps.
func TestInviteLinks(t *testing.T) {
	get := func(h http.Handler, method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/invite", nil))
		return rec
	}
	redirects := func(name string, h http.Handler) {
		t.Helper()
		rec := get(h, "GET")
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/admin/" {
			t.Errorf("%s: GET /invite = %d Location %q, want 302 /admin/", name, rec.Code, rec.Header().Get("Location"))
		}
		if strings.Contains(rec.Header().Get("Location"), "#") {
			t.Errorf("%s: a fragment in Location would replace the code", name)
		}
	}

	same := newServer(t, "")
	redirects("single address", same.Handler())
	if rec := get(same.Handler(), "POST"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /invite = %d, want 405", rec.Code)
	}

	split := newServer(t, "127.0.0.1:0")
	redirects("admin address", split.AdminHandler())
	rec := get(split.Handler(), "GET")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(rec.Body.String(), "invite code") || strings.Contains(rec.Body.String(), "<script") {
		t.Errorf("public address with --admin-listen: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("invite page CSP %q", csp)
	}
}

func TestInviteLinkTargets(t *testing.T) {
	cfg := config.Default()
	cfg.RPOrigins = []string{"https://chat.example.org", "https://admin.chat.example.org:9090"}
	if got := server.InviteLink(cfg, "abcd", models.RoleAdmin); got != "https://chat.example.org/invite#abcd" {
		t.Errorf("admin link without --admin-listen = %q", got)
	}
	cfg.AdminListen = "127.0.0.1:9090"
	for role, want := range map[models.Role]string{
		models.RoleAdmin:  "https://admin.chat.example.org:9090/invite#abcd", // the WebAuthn origin on the admin port
		models.RoleMember: "https://chat.example.org/invite#abcd",
	} {
		if got := server.InviteLink(cfg, "abcd", role); got != want {
			t.Errorf("%s link = %q, want %q", role, got, want)
		}
	}
	cfg.RPOrigins = []string{"https://chat.example.org"}
	if got := server.InviteLink(cfg, "abcd", models.RoleAdmin); got != "http://localhost:9090/invite#abcd" { // passkeys need a name, not 127.0.0.1
		t.Errorf("admin link, no origin on the admin port = %q", got)
	}
}
