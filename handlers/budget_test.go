package handlers_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestMaxBodyBytesAppliesToEveryRoute: --max-body-bytes bounds the body of
// every operation that does not size its own (issue #19, finding 7): a body
// over it is refused with a 413 problem before it is decoded, on public and
// protected operations alike; a body within it is read.
func TestMaxBodyBytesAppliesToEveryRoute(t *testing.T) {
	const limit = 8192
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.MaxBodyBytes = limit })
	acc := s.SeedAccount(t, "bodyuser", "member")
	admin := s.SeedAccount(t, "bodyadmin", "admin")
	big := []byte(`{"username":"` + strings.Repeat("a", 200_000) + `"}`)
	cases := []struct{ method, path, token string }{
		{"POST", "/v1/auth/register/begin", ""},
		{"POST", "/v1/auth/login/begin", ""},
		{"POST", "/v1/users/bodyadmin/key-packages/claim", acc.Token},
		{"POST", "/v1/groups", acc.Token},
		{"PATCH", "/v1/admin/settings", admin.Token},
		{"POST", "/v1/admin/invites", admin.Token},
	}
	for _, c := range cases {
		r := s.Do(t, c.method, c.path, c.token, big)
		expectProblem(t, r, http.StatusRequestEntityTooLarge, "body_too_large")
	}
	// Exactly the limit is read (and then judged on its content).
	exact := []byte(`{"username":"` + strings.Repeat("a", limit-len(`{"username":""}`)) + `"}`)
	if len(exact) != limit {
		t.Fatalf("test body is %d bytes", len(exact))
	}
	if r := s.Do(t, "POST", "/v1/auth/login/begin", "", exact); r.StatusCode == http.StatusRequestEntityTooLarge {
		t.Fatalf("a body of exactly --max-body-bytes = %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "POST", "/v1/auth/login/begin", "", append(exact[:len(exact)-2:len(exact)-2], []byte(`a"}`)...)); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body of --max-body-bytes + 1 = %d %s", r.StatusCode, r.Body)
	}
}

// TestPerIPLimitsKeyOnTheIPv6Prefix: the per-IP limits (ceremonies and
// streams) count every address of one IPv6 /64 as one client (issue #19,
// finding 8); another /64 has its own budget; --ipv6-prefix changes the
// prefix.
func TestPerIPLimitsKeyOnTheIPv6Prefix(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
		c.Limits.AuthBurst = 5
		c.Limits.AuthRequestsPerMin = 1
		c.Limits.StreamsPerIP = 2
	})
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
	limited := 0
	for i := 1; i <= 40; i++ {
		r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}, from(fmt.Sprintf("2001:db8:1:2::%x", i))...)
		if r.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 35 {
		t.Fatalf("40 addresses of one /64: %d limited, want 35 (one budget of 5)", limited)
	}
	if r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}, from("2001:db8:1:3::1")...); r.StatusCode != http.StatusOK {
		t.Fatalf("another /64 = %d %s", r.StatusCode, r.Body)
	}
	// IPv4 clients are still counted per address.
	for i := 0; i < 5; i++ {
		if r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}, from("198.51.100.9")...); r.StatusCode != http.StatusOK {
			t.Fatalf("IPv4 request %d = %d", i+1, r.StatusCode)
		}
	}
	if r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}, from("198.51.100.10")...); r.StatusCode != http.StatusOK {
		t.Fatalf("the next IPv4 address = %d", r.StatusCode)
	}

	// Streams: two slots for the whole /64.
	acc := s.SeedAccount(t, "v6streams", "member")
	for i := 1; i <= 2; i++ {
		st, resp := openSSE(t, s, acc.Token, "", from(fmt.Sprintf("2001:db8:9:9::%x", i))...)
		if st == nil {
			t.Fatalf("stream %d = %d", i, resp.StatusCode)
		}
		defer st.close()
	}
	if st, resp := openSSE(t, s, acc.Token, "", from("2001:db8:9:9:ffff::1")...); st != nil || resp.StatusCode != http.StatusTooManyRequests {
		if st != nil {
			st.close()
		}
		t.Fatalf("third stream from the same /64 was not refused")
	}
	st, resp := openSSE(t, s, acc.Token, "", from("2001:db8:9:a::1")...)
	if st == nil {
		t.Fatalf("stream from another /64 = %d", resp.StatusCode)
	}
	st.close()

	// --ipv6-prefix 128 counts each address on its own again.
	s128 := testutil.NewServer(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
		c.Limits.AuthBurst = 1
		c.Limits.AuthRequestsPerMin = 1
		c.Limits.IPv6Prefix = 128
	})
	for i := 1; i <= 3; i++ {
		if r := s128.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}, from(fmt.Sprintf("2001:db8:1:2::%x", i))...); r.StatusCode != http.StatusOK {
			t.Fatalf("--ipv6-prefix 128, address %d = %d", i, r.StatusCode)
		}
	}
}

// TestCreateGroupIsNoProbe: creating a group whose id is taken answers a
// non-member exactly as every other group operation answers it for a group
// that exists and for one that does not (issue #19, finding 9); the failed
// creation gives it nothing; the group's own member still gets 409.
func TestCreateGroupIsNoProbe(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	mallory := s.SeedAccount(t, "mallory", models.RoleMember)
	taken, ghost := []byte("taken-group-id-0001"), []byte("ghost-group-id-0001")
	createGroup(t, s, alice, taken)
	create := s.Do(t, "POST", "/v1/groups", mallory.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(taken)})
	getTaken := s.Do(t, "GET", gpath(taken, ""), mallory.Token, nil)
	getGhost := s.Do(t, "GET", gpath(ghost, ""), mallory.Token, nil)
	sendGhost := send(t, s, mallory, ghost, mlstest.PrivateMessage(ghost, 0, mls.ContentApplication, nil, 50))
	for name, r := range map[string]*testutil.Response{"get taken": getTaken, "get missing": getGhost, "send missing": sendGhost} {
		if r.StatusCode != create.StatusCode || string(r.Body) != string(create.Body) {
			t.Fatalf("create of a taken id = %d %s; %s = %d %s", create.StatusCode, create.Body, name, r.StatusCode, r.Body)
		}
	}
	expectProblem(t, create, http.StatusForbidden, "not_member")
	// Mallory got no membership and no group out of it.
	var groups struct {
		Groups []handlers.GroupSummaryBody `json:"groups"`
	}
	s.Do(t, "GET", "/v1/groups", mallory.Token, nil).JSON(t, &groups)
	if len(groups.Groups) != 0 {
		t.Fatalf("mallory's groups after the refused create: %+v", groups.Groups)
	}
	// The member itself learns nothing new: a conflict.
	r := s.Do(t, "POST", "/v1/groups", alice.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(taken)})
	expectProblem(t, r, http.StatusConflict, "group_exists")
}
