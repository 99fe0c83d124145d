package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/testutil"
)

// adminOperations reads every operation tagged admin from the committed
// openapi.yaml.
func adminOperations(t *testing.T) []struct{ Method, Path, ID string } {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                `yaml:"operationId"`
			Tags        []string              `yaml:"tags"`
			Security    []map[string][]string `yaml:"security"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []struct{ Method, Path, ID string }
	for path, methods := range doc.Paths {
		for method, op := range methods {
			if !slices.Contains(op.Tags, "admin") {
				continue
			}
			if len(op.Security) != 1 || op.Security[0]["bearer"] == nil {
				t.Errorf("%s %s: admin operation without the bearer requirement", method, path)
			}
			ops = append(ops, struct{ Method, Path, ID string }{strings.ToUpper(method), path, op.OperationID})
		}
	}
	slices.SortFunc(ops, func(a, b struct{ Method, Path, ID string }) int { return strings.Compare(a.ID, b.ID) })
	return ops
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// TestEveryAdminOperationNeedsAnAdmin is acceptance (a): every operation
// tagged admin answers 401 without a token and 403 with a member's token,
// whatever the body, and a member's attempt is audited.
func TestEveryAdminOperationNeedsAnAdmin(t *testing.T) {
	s := testutil.NewServer(t)
	member := s.SeedAccount(t, "mallory", models.RoleMember)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	ops := adminOperations(t)
	if len(ops) < 4 {
		t.Fatalf("only %d admin operations found", len(ops))
	}
	for _, op := range ops {
		t.Run(op.ID, func(t *testing.T) {
			path := pathParam.ReplaceAllString(op.Path, "0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f")
			var body any
			if op.Method == http.MethodPost || op.Method == http.MethodPatch || op.Method == http.MethodPut {
				body = []byte(`{"not":"valid"}`)
			}
			if r := s.Do(t, op.Method, path, "", body); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("no token: %d %s", r.StatusCode, r.Body)
			}
			if r := s.Do(t, op.Method, path, "not-a-session", body); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("bad token: %d %s", r.StatusCode, r.Body)
			}
			if r := s.Do(t, op.Method, path, member.Token, body); r.StatusCode != http.StatusForbidden {
				t.Errorf("member token: %d %s", r.StatusCode, r.Body)
			}
		})
	}
	// Every refusal of the member is in the audit log, with the operation:
	// aggregated, one entry per member per minute with a count
	// (TestAdminDenialsAreAggregated).
	r := s.Do(t, "GET", "/v1/admin/audit?action=auth.admin_denied&limit=200", admin.Token, nil)
	var page struct {
		Entries []struct {
			Actor  struct{ Username string }
			Detail map[string]any
		}
	}
	r.JSON(t, &page)
	total, seen := 0, map[string]bool{}
	for _, e := range page.Entries {
		if e.Actor.Username != "mallory" || e.Detail["operation"] == "" {
			t.Fatalf("denial entry %+v", e)
		}
		total += int(e.Detail["count"].(float64))
		for op := range e.Detail["by_operation"].(map[string]any) {
			seen[op] = true
		}
	}
	if total != len(ops) || len(page.Entries) > 2 {
		t.Fatalf("%d denials audited in %d entries, want %d in one a minute", total, len(page.Entries), len(ops))
	}
	for _, op := range ops {
		if !seen[op.ID] {
			t.Fatalf("refused operation %s not in the audit entries", op.ID)
		}
	}
}

func TestAdminStats(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("stats-group")
	createGroup(t, s, alice, gid)
	msg := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 300)
	mustSend(t, s, alice, gid, msg)
	mustSend(t, s, alice, gid, msg)
	r := s.Do(t, "GET", "/v1/admin/stats", admin.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d %s", r.StatusCode, r.Body)
	}
	var m map[string]any
	r.JSON(t, &m)
	if m["users"] != 3.0 || m["admins"] != 1.0 || m["devices"] != 3.0 || m["active_sessions"] != 3.0 || m["groups"] != 1.0 ||
		m["messages"] != 2.0 || m["message_bytes"] != float64(2*len(msg)) {
		t.Fatalf("stats %v", m)
	}
	if m["database_bytes"].(float64) < 4096 {
		t.Fatalf("database size %v", m["database_bytes"])
	}
	if m["open_streams"] != 0.0 {
		t.Fatalf("open_streams with no stream open = %v", m["open_streams"])
	}
}

func TestAdminSettingsOverrideConfigAtRunTime(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)

	r := s.Do(t, "GET", "/v1/admin/settings", admin.Token, nil)
	var got struct {
		Effective map[string]any `json:"effective"`
		Defaults  map[string]any `json:"defaults"`
		Overrides map[string]any `json:"overrides"`
	}
	r.JSON(t, &got)
	if got.Effective["registration_mode"] != "invite" || got.Effective["messages_per_minute"] != 60.0 || len(got.Overrides) != 0 {
		t.Fatalf("initial settings %+v", got)
	}

	r = s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{
		"set": map[string]any{"registration_mode": "open", "messages_per_minute": 5}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d %s", r.StatusCode, r.Body)
	}
	got = struct {
		Effective map[string]any `json:"effective"`
		Defaults  map[string]any `json:"defaults"`
		Overrides map[string]any `json:"overrides"`
	}{}
	r.JSON(t, &got)
	if got.Effective["registration_mode"] != "open" || got.Effective["messages_per_minute"] != 5.0 ||
		got.Defaults["messages_per_minute"] != 60.0 || got.Overrides["messages_per_minute"] != 5.0 {
		t.Fatalf("after patch %+v", got)
	}
	if v := s.App.Settings().Get(); v.RegistrationMode != "open" || v.MessagesPerMinute != 5 {
		t.Fatalf("live settings %+v", v)
	}

	// Bad values and empty changes are refused and change nothing.
	for _, body := range []string{
		`{"set":{"messages_per_minute":0}}`,
		`{"set":{"registration_mode":"closed"}}`,
		`{"set":{"auth_burst":100000}}`,
		`{"reset":["no_such_setting"]}`,
		`{"set":{"unknown":1}}`,
		`{}`,
		`{"set":{"auth_burst":5},"reset":["auth_burst"]}`,
		`{"reset":["auth_burst","auth_burst"]}`, // duplicate_reset
		`{"reset":[{"a":1},"auth_burst"]}`,      // was a 500 (Huma's uniqueItems check panicked)
	} {
		r := s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, []byte(body))
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", body, r.StatusCode, r.Body)
		}
	}
	if v := s.App.Settings().Get(); v.AuthBurst != s.Config.Limits.AuthBurst || v.MessagesPerMinute != 5 {
		t.Fatalf("refused change applied: %+v", v)
	}

	// Overrides survive a restart.
	if err := s.App.Close(); err != nil {
		t.Fatal(err)
	}
	app, err := server.New(context.Background(), s.Config, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := app.Settings().Get(); v.RegistrationMode != "open" || v.MessagesPerMinute != 5 || v.AuthPerMinute != s.Config.Limits.AuthRequestsPerMin {
		t.Fatalf("after restart %+v", v)
	}
	_ = app.Close()
}

func TestAdminSettingsResetAndAudit(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"set": map[string]any{"auth_per_minute": 7, "auth_burst": 3}})
	r := s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"reset": []string{"auth_per_minute"}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("reset: %d %s", r.StatusCode, r.Body)
	}
	if v := s.App.Settings().Get(); v.AuthPerMinute != s.Config.Limits.AuthRequestsPerMin || v.AuthBurst != 3 {
		t.Fatalf("after reset %+v", v)
	}
	r = s.Do(t, "GET", "/v1/admin/audit?action=settings.update", admin.Token, nil)
	var page struct {
		Entries []struct {
			Action   string         `json:"action"`
			ClientIP string         `json:"client_ip"`
			Detail   map[string]any `json:"detail"`
			Actor    struct {
				UserID string `json:"user_id"`
			} `json:"actor"`
		} `json:"entries"`
	}
	r.JSON(t, &page)
	if len(page.Entries) != 2 {
		t.Fatalf("entries %+v", page.Entries)
	}
	newest, oldest := page.Entries[0], page.Entries[1]
	if v, ok := newest.Detail["auth_per_minute"]; !ok || v != nil {
		t.Fatalf("reset detail %v", newest.Detail)
	}
	if oldest.Detail["auth_per_minute"] != 7.0 || oldest.Detail["auth_burst"] != 3.0 {
		t.Fatalf("set detail %v", oldest.Detail)
	}
	if newest.Actor.UserID != admin.UserID || newest.ClientIP != "127.0.0.1" {
		t.Fatalf("actor %+v ip %q", newest.Actor, newest.ClientIP)
	}
}

func TestAdminAuditPagingAndFilters(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	ctx := context.Background()
	for i := range 7 {
		action := models.AuditLoginFailed
		if i%2 == 1 {
			action = models.AuditInviteRevoke
		}
		if err := s.Store.Audit(ctx, models.AuditEntry{Actor: models.Actor{IP: "192.0.2.1"}, Action: action,
			TargetType: models.TargetInvite, TargetID: fmt.Sprintf("t%d", i), Detail: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Entries []struct {
			ID       int64          `json:"id"`
			Action   string         `json:"action"`
			TargetID string         `json:"target_id"`
			Actor    *struct{}      `json:"actor"`
			Detail   map[string]any `json:"detail"`
		} `json:"entries"`
		NextBefore *int64 `json:"next_before"`
	}
	var all []string
	path := "/v1/admin/audit?limit=3"
	for {
		var p page
		s.Do(t, "GET", path, admin.Token, nil).JSON(t, &p)
		for _, e := range p.Entries {
			all = append(all, e.TargetID)
			if e.Actor != nil {
				t.Fatalf("anonymous entry has an actor")
			}
		}
		if p.NextBefore == nil {
			break
		}
		path = fmt.Sprintf("/v1/admin/audit?limit=3&before=%d", *p.NextBefore)
	}
	if strings.Join(all, ",") != "t6,t5,t4,t3,t2,t1,t0" {
		t.Fatalf("paged order %v", all)
	}
	for q, want := range map[string]int{
		"action=auth.login_failed": 4,
		"action=invite.":           3,
		"action=auth.":             4,
		"target=t3":                1,
		"actor=" + admin.UserID:    0,
		"since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z": 7,
		"until=2000-01-01T00:00:00Z":                            0,
	} {
		var p page
		r := s.Do(t, "GET", "/v1/admin/audit?"+q, admin.Token, nil)
		r.JSON(t, &p)
		if len(p.Entries) != want {
			t.Errorf("%s: %d entries, want %d", q, len(p.Entries), want)
		}
	}
	for _, q := range []string{"limit=0", "limit=201", "before=0", "action=DROP%20TABLE", "since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z"} {
		if r := s.Do(t, "GET", "/v1/admin/audit?"+q, admin.Token, nil); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", q, r.StatusCode, r.Body)
		}
	}
}

// A rate limit changed in the settings applies to the next request, with
// no restart: here the key-package claim limit per claiming device.
func TestSettingsApplyToRateLimitsAtOnce(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	s.UploadKeyPackages(t, alice, 5, false)
	if r := s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"set": map[string]any{"claims_per_minute": 1}}); r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d %s", r.StatusCode, r.Body)
	}
	claimOnce := func() int {
		return s.Do(t, "POST", "/v1/users/alice/key-packages/claim", bob.Token, map[string]any{"cipher_suite": 1}).StatusCode
	}
	if st := claimOnce(); st != http.StatusOK {
		t.Fatalf("first claim: %d", st)
	}
	if st := claimOnce(); st != http.StatusTooManyRequests {
		t.Fatalf("second claim with claims_per_minute=1: %d", st)
	}
	s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"set": map[string]any{"claims_per_minute": 600}})
	s.Clock.Advance(time.Second) // refill at the new rate: 10 per second
	if st := claimOnce(); st != http.StatusOK {
		t.Fatalf("claim after raising the limit: %d", st)
	}
}

// The message limit per user follows messages_per_minute at once.
func TestMessagesPerMinuteSettingIsLive(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("live-limit-group")
	createGroup(t, s, alice, gid)
	if r := s.Do(t, "PATCH", "/v1/admin/settings", admin.Token, map[string]any{"set": map[string]any{"messages_per_minute": 3}}); r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d %s", r.StatusCode, r.Body)
	}
	for i := range 3 {
		if r := send(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50)); r.StatusCode != http.StatusCreated {
			t.Fatalf("message %d: %d %s", i+1, r.StatusCode, r.Body)
		}
	}
	r := send(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))
	if p := decodeProblem(t, r); r.StatusCode != http.StatusTooManyRequests || !strings.Contains(p.Detail, "at most 3 per minute") {
		t.Fatalf("4th message: %d %s", r.StatusCode, r.Body)
	}
}
