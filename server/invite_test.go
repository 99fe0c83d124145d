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

// Invite links (/invite#<code>) lead where registration happens: member
// invites to the member app, admin invites (?role=admin) to the admin
// console wherever it is served; the fragment survives the redirect.
func TestInviteLinks(t *testing.T) {
	get := func(h http.Handler, method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
		return rec
	}
	redirects := func(name string, h http.Handler, target, want string) {
		t.Helper()
		rec := get(h, "GET", target)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != want {
			t.Errorf("%s: GET %s = %d Location %q, want 302 %s", name, target, rec.Code, rec.Header().Get("Location"), want)
		}
		if strings.Contains(rec.Header().Get("Location"), "#") {
			t.Errorf("%s: a fragment in Location would replace the code", name)
		}
	}

	same := newServer(t, "")
	redirects("single address, member invite", same.Handler(), "/invite", "/app/")
	redirects("single address, admin invite", same.Handler(), "/invite?role=admin", "/admin/")
	if rec := get(same.Handler(), "POST", "/invite"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /invite = %d, want 405", rec.Code)
	}

	split := newServer(t, "127.0.0.1:0")
	redirects("admin address", split.AdminHandler(), "/invite?role=admin", "/admin/")
	redirects("admin address, any invite", split.AdminHandler(), "/invite", "/admin/")
	redirects("public address with --admin-listen", split.Handler(), "/invite", "/app/")
	redirects("public address with --admin-listen, admin link", split.Handler(), "/invite?role=admin", "/app/")
}

func TestInviteLinkTargets(t *testing.T) {
	cfg := config.Default()
	cfg.RPOrigins = []string{"https://chat.example.org", "http://localhost:9090"}
	if got := server.InviteLink(cfg, "abcd", models.RoleAdmin); got != "https://chat.example.org/invite?role=admin#abcd" {
		t.Errorf("admin link without --admin-listen = %q", got)
	}
	cfg.AdminListen = "127.0.0.1:9090"
	for role, want := range map[models.Role]string{
		models.RoleAdmin:  "http://localhost:9090/invite?role=admin#abcd", // the WebAuthn origin on the admin port
		models.RoleMember: "https://chat.example.org/invite#abcd",
	} {
		if got := server.InviteLink(cfg, "abcd", role); got != want {
			t.Errorf("%s link = %q, want %q", role, got, want)
		}
	}
	cfg.RPOrigins = []string{"https://chat.example.org"}
	if got := server.InviteLink(cfg, "abcd", models.RoleAdmin); got != "http://127.0.0.1:9090/invite?role=admin#abcd" {
		t.Errorf("admin link, no origin on the admin port = %q", got)
	}
}
