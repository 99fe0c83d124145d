package handlers_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestDirectoryLookup: exact match only, active devices listed, unknown,
// disabled and deleted users answer byte for byte the same.
func TestDirectoryLookup(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminKey := s.RegisterAdmin(t, "root")
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	bob2 := s.SeedDevice(t, bob, "")
	carol := s.SeedAccount(t, "carol", models.RoleMember)
	dave := s.SeedAccount(t, "dave", models.RoleMember)

	r := s.Do(t, "GET", "/v1/users/BOB", alice.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("lookup bob: %d %s", r.StatusCode, r.Body)
	}
	var u handlers.DirectoryUserBody
	r.JSON(t, &u)
	if u.ID != bob.UserID || u.Username != "bob" || u.DisplayName != "bob" || len(u.Devices) != 2 {
		t.Fatalf("lookup bob: %+v", u)
	}
	// A revoked device disappears from the directory.
	if r := s.Do(t, "DELETE", "/v1/me/devices/"+bob2.DeviceID, bob.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	r = s.Do(t, "GET", "/v1/users/bob", alice.Token, nil)
	r.JSON(t, &u)
	if len(u.Devices) != 1 || u.Devices[0].ID != bob.DeviceID {
		t.Fatalf("after revoke: %+v", u.Devices)
	}
	// Prefixes are not matches.
	if r := s.Do(t, "GET", "/v1/users/bo", alice.Token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("prefix lookup: %d %s", r.StatusCode, r.Body)
	}
	// Unknown, disabled and deleted look the same.
	if r := s.Do(t, "POST", "/v1/admin/users/"+carol.UserID+"/disable", admin.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "DELETE", "/v1/admin/users/"+dave.UserID, admin.Token, nil, "Sovereign-Step-Up",
		s.StepUp(t, admin.Token, adminKey, "delete_user", dave.UserID)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
	}
	var bodies [][]byte
	for _, name := range []string{"nobody", "carol", "dave"} {
		r := s.Do(t, "GET", "/v1/users/"+name, alice.Token, nil)
		if r.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %d %s", name, r.StatusCode, r.Body)
		}
		bodies = append(bodies, bytes.ReplaceAll(r.Body, []byte(name), []byte("X")))
	}
	if !bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[0], bodies[2]) {
		t.Fatalf("unknown, disabled and deleted differ:\n%s\n%s\n%s", bodies[0], bodies[1], bodies[2])
	}
	// Signed-in users only.
	if r := s.Do(t, "GET", "/v1/users/bob", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", r.StatusCode)
	}
}

// TestDirectoryRateLimit: lookups and searches share one budget per device.
func TestDirectoryRateLimit(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.ClaimsPerMinute = 3; c.Directory = "search" })
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	alice2 := s.SeedDevice(t, alice, "")
	s.SeedAccount(t, "bob", models.RoleMember)
	for i, p := range []string{"/v1/users/bob", "/v1/users/nobody", "/v1/users?prefix=bo"} {
		if r := s.Do(t, "GET", p, alice.Token, nil); r.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("request %d limited too early", i)
		}
	}
	r := s.Do(t, "GET", "/v1/users/bob", alice.Token, nil)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("4th lookup: %d %s", r.StatusCode, r.Body)
	}
	if p := decodeProblem(t, r); p.Code != "directory_rate_limited" {
		t.Fatalf("code %q", p.Code)
	}
	// Another device has its own budget.
	if r := s.Do(t, "GET", "/v1/users/bob", alice2.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("other device: %d", r.StatusCode)
	}
	s.Clock.Advance(60_000_000_000)
	if r := s.Do(t, "GET", "/v1/users/bob", alice.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("after a minute: %d %s", r.StatusCode, r.Body)
	}
}

// TestDirectorySearch: off by default; with directory=search, prefix
// search of enabled users only, no devices listed.
func TestDirectorySearch(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	s.SeedAccount(t, "bob", models.RoleMember)
	s.SeedAccount(t, "bobby", models.RoleMember)
	bobo := s.SeedAccount(t, "bobo", models.RoleMember)
	r := s.Do(t, "GET", "/v1/users?prefix=bo", alice.Token, nil)
	if r.StatusCode != http.StatusForbidden || decodeProblem(t, r).Code != "directory_search_disabled" {
		t.Fatalf("search with directory=exact: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"set": map[string]any{"directory": "search"}}); r.StatusCode != http.StatusOK {
		t.Fatalf("setting: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "POST", "/v1/admin/users/"+bobo.UserID+"/disable", admin.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	r = s.Do(t, "GET", "/v1/users?prefix=BO", alice.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("search: %d %s", r.StatusCode, r.Body)
	}
	var out struct{ Users []handlers.DirectoryUserBody }
	r.JSON(t, &out)
	var names []string
	for _, u := range out.Users {
		names = append(names, u.Username)
		if u.Devices != nil {
			t.Errorf("search lists devices of %s", u.Username)
		}
	}
	if strings.Join(names, ",") != "bob,bobby" {
		t.Fatalf("search found %v", names)
	}
	if r := s.Do(t, "GET", "/v1/users?prefix=%25", alice.Token, nil); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("1-char prefix: %d", r.StatusCode)
	}
	if r := s.Do(t, "GET", "/v1/users?prefix=%25%25", alice.Token, nil); r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), `"users":[]`) {
		t.Fatalf("wildcard prefix: %d %s", r.StatusCode, r.Body)
	}
}

// TestDisplayNames: a user changes their display name; member lists and
// the directory show it.
func TestDisplayNames(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("display-names-group-0001")
	createGroup(t, s, alice, gid)
	joinGroup(t, s, bob, gid)
	r := s.Do(t, "PATCH", "/v1/me", bob.Token, map[string]any{"display_name": "  Bob Marley "})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("patch me: %d %s", r.StatusCode, r.Body)
	}
	var me handlers.UserInfo
	r.JSON(t, &me)
	if me.DisplayName != "Bob Marley" {
		t.Fatalf("display name %q", me.DisplayName)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", 65), "a\u0000b"} {
		if r := s.Do(t, "PATCH", "/v1/me", bob.Token, map[string]any{"display_name": bad}); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("display name %q: %d", bad, r.StatusCode)
		}
	}
	r = s.Do(t, "GET", gpath(gid, ""), alice.Token, nil)
	var g handlers.GroupBody
	r.JSON(t, &g)
	found := false
	for _, m := range g.Members {
		if m.UserID == bob.UserID {
			found = m.DisplayName == "Bob Marley"
		}
	}
	if !found {
		t.Fatalf("member list: %+v", g.Members)
	}
	r = s.Do(t, "GET", "/v1/users/bob", alice.Token, nil)
	var u handlers.DirectoryUserBody
	r.JSON(t, &u)
	if u.DisplayName != "Bob Marley" {
		t.Fatalf("directory: %+v", u)
	}
}
