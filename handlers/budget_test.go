package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

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

// TestHonestClaimerIsNeverStarved: the reproduction of issue #19, finding
// 3. An attacker with 20 devices claims a victim's key packages as fast as
// the server lets it, every second for a minute, while an honest claimer
// claims every other second: every honest claim is answered (a normal
// package while any is left, then the last-resort one), none is refused,
// because the per-target budget is each claiming user's own and the
// attacker's devices share one.
func TestHonestClaimerIsNeverStarved(t *testing.T) {
	s := testutil.NewServer(t)
	victim := s.SeedAccount(t, "victim", models.RoleMember)
	s.UploadKeyPackages(t, victim, 99, true)
	attacker := s.SeedAccount(t, "attacker", models.RoleMember)
	devices := []testutil.Account{attacker}
	for len(devices) < 20 {
		devices = append(devices, s.SeedDevice(t, attacker, ""))
	}
	honest := s.SeedAccount(t, "honest", models.RoleMember)
	began := time.Now()
	var attackerOK, attackerRefused, honestOK, lastResort int
	for sec := 0; sec < 60; sec++ {
		for _, d := range devices {
			switch st, _, p := claim(t, s, d, "victim", 1); st {
			case http.StatusOK:
				attackerOK++
			case http.StatusTooManyRequests:
				attackerRefused++
			default:
				t.Fatalf("attacker claim = %d %+v", st, p)
			}
		}
		if sec%2 == 0 {
			st, res, p := claim(t, s, honest, "victim", 1)
			if st != http.StatusOK {
				t.Fatalf("second %d: the honest claimer was refused: %d %+v (attacker: %d answered, %d refused)",
					sec, st, p, attackerOK, attackerRefused)
			}
			honestOK++
			if len(res.KeyPackages) != 1 {
				t.Fatalf("honest claim gave %d packages", len(res.KeyPackages))
			}
			if res.KeyPackages[0].LastResort {
				lastResort++
			}
		}
		s.Clock.Advance(time.Second)
	}
	t.Logf("attacker (20 devices): %d claims answered, %d refused; honest: %d of 30 answered (%d with the last-resort package)",
		attackerOK, attackerRefused, honestOK, lastResort)
	// The attacker's 20 devices got no more than one user's budget.
	// (The test clock is real time plus the advances: real seconds refill
	// too.)
	if max := 30 + int(60+time.Since(began).Seconds())/2 + 1; attackerOK > max {
		t.Fatalf("the attacker's devices got %d claims, more than one user's %d", attackerOK, max)
	}
}

// TestAdminDenialsAreAggregated: a member's refused admin requests are
// audited as one entry per minute with a count (issue #19, finding 4), not
// one row per request: 300 refusals over three operations are one or two
// entries (a minute may turn during the flood) counting all 300; a later
// minute starts a new entry.
func TestAdminDenialsAreAggregated(t *testing.T) {
	s := testutil.NewServer(t)
	member := s.SeedAccount(t, "flooder", models.RoleMember)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	paths := []string{"/v1/admin/stats", "/v1/admin/settings", "/v1/admin/users"}
	const n = 300
	for i := 0; i < n; i++ {
		if r := s.Do(t, "GET", paths[i%len(paths)], member.Token, nil); r.StatusCode != http.StatusForbidden {
			t.Fatalf("member request %d = %d", i, r.StatusCode)
		}
	}
	type entry struct {
		Actor  struct{ Username string }
		Detail map[string]any
	}
	read := func() []entry {
		var page struct{ Entries []entry }
		s.Do(t, "GET", "/v1/admin/audit?action=auth.admin_denied&limit=200", admin.Token, nil).JSON(t, &page)
		return page.Entries
	}
	entries := read()
	total := 0
	for _, e := range entries {
		total += int(e.Detail["count"].(float64))
	}
	if len(entries) > 2 || total != n {
		t.Fatalf("%d refusals made %d audit entries counting %d; want one a minute counting all", n, len(entries), total)
	}
	by := entries[0].Detail["by_operation"].(map[string]any)
	if len(by) != 3 {
		t.Fatalf("by_operation = %v", by)
	}
	s.Clock.Advance(61 * time.Second)
	s.Do(t, "GET", "/v1/admin/stats", member.Token, nil)
	later := read()
	if len(later) != len(entries)+1 || later[0].Detail["count"].(float64) != 1 {
		t.Fatalf("a later minute: %d entries, newest %v", len(later), later[0].Detail)
	}
}

// TestAckFloodDoesNotSlowHonestSends: eight WebSockets of one attacker
// flooding acks (repeats of its cursor and acks past its feed's head, as
// fast as they can) must neither reach the writer at their rate nor slow
// an honest user's sends (issue #19, finding 10). The honest sends' median
// latency under the flood is compared with a baseline taken in the same
// run, so the check holds on a loaded machine; the number of ack writes the
// writer ran is checked against the per-device budget.
func TestAckFloodDoesNotSlowHonestSends(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.MessagesPerMinute = 100000 })
	honest := s.SeedAccount(t, "honest", models.RoleMember)
	gid := []byte("ack-flood-honest-group")
	createGroup(t, s, honest, gid)
	attacker := s.SeedAccount(t, "attacker", models.RoleMember)
	const sockets = 8
	var conns []*wsConn
	for i := 0; i < sockets; i++ {
		d := attacker
		if i > 0 {
			d = s.SeedDevice(t, attacker, "")
		}
		c, resp, err := dialWS(t, s, d.Token, "")
		if err != nil {
			t.Fatalf("dial %d: %v (%v)", i, err, resp)
		}
		conns = append(conns, c)
	}
	medianSend := func(n int) time.Duration {
		lat := make([]time.Duration, n)
		for i := range lat {
			start := time.Now()
			mustSend(t, s, honest, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 200))
			lat[i] = time.Since(start)
		}
		slices.Sort(lat)
		return lat[n/2]
	}
	medianSend(5) // warm up
	baseline := medianSend(40)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var frames atomic.Int64
	for _, c := range conns {
		wg.Add(1)
		go func() {
			// Each flooder sends its next ack as soon as the previous one
			// is answered: as fast as the server goes (a flooder that
			// pipelines only fills its own socket buffers).
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				seq := int64(0)
				if i%2 == 1 {
					seq = 1 << 40 // past the head: refused, but only after a write
				}
				b, _ := json.Marshal(handlers.WSClientFrame{Type: "ack", Seq: seq})
				if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
					return
				}
				if _, _, err := c.c.Read(ctx); err != nil {
					return
				}
				frames.Add(1)
			}
		}()
	}
	// Let the flood start (its first burst of acks), then measure under it.
	waitFor(t, func() bool { return frames.Load() >= sockets*handlers.AckBurst })
	before, floodStart := s.Store.WriterStats(), time.Now()
	flooded := medianSend(40)
	after, floodTime := s.Store.WriterStats(), time.Since(floodStart)
	sent := frames.Load()
	stop()
	for _, c := range conns {
		_ = c.c.CloseNow()
	}
	wg.Wait()

	writes := int64(after.UseCases-before.UseCases) - 40
	budget := int64(sockets) * (handlers.AckBurst + int64(floodTime.Seconds()*handlers.AckWritesPerMinute/60) + 1)
	t.Logf("honest send median: %v without the flood, %v under it; %d acks answered, %d ack writes during %v (budget %d)",
		baseline, flooded, sent, writes, floodTime.Round(time.Millisecond), budget)
	if writes > budget {
		t.Fatalf("the writer ran %d ack writes in %v, more than the budget of %d", writes, floodTime, budget)
	}
	if flooded > 4*baseline+25*time.Millisecond {
		t.Fatalf("honest send median %v under the ack flood vs %v without", flooded, baseline)
	}
}

// TestGroupInfoAndWelcomesCountAgainstTheQuota: part of issue #19,
// finding 2. A group's GroupInfo counts in its bytes_used, and a commit that
// adds members must fit the quota with a Welcome stored for each added
// device (507 otherwise); a commit that adds nobody is still accepted in a
// full group, so a compromised device can always be removed.
func TestGroupInfoAndWelcomesCountAgainstTheQuota(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.GroupQuotaBytes = 65536 })
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("quota-counts-group-01")
	gi0 := mlstest.GroupInfo(gid, 0)
	r := s.Do(t, "POST", "/v1/groups", alice.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(gid), "group_info": gi0})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, r.Body)
	}
	used := func() int64 {
		var g handlers.GroupBody
		s.Do(t, "GET", gpath(gid, ""), alice.Token, nil).JSON(t, &g)
		return g.BytesUsed
	}
	if u := used(); u != int64(len(gi0)) {
		t.Fatalf("bytes_used after create with a %d-byte GroupInfo = %d", len(gi0), u)
	}
	// Fill the group to just under its quota.
	msg := mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, 65536-int(used())-300)
	mustSend(t, s, alice, gid, msg)
	// Adding Bob: commit + Welcome do not fit → 507, nothing stored.
	ref := mlstest.Ref()
	recordClaim(t, s, alice, bob, ref)
	before := used()
	r = commit(t, s, alice, gid, map[string]any{
		"commit":     mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 100),
		"welcome":    mlstest.Welcome(ref),
		"group_info": mlstest.GroupInfo(gid, 1),
	})
	expectProblem(t, r, http.StatusInsufficientStorage, "group_quota_exceeded")
	if u := used(); u != before {
		t.Fatalf("a refused commit changed bytes_used %d → %d", before, u)
	}
	// A commit that adds nobody is accepted even in a full group; its
	// GroupInfo replaces the old one in the count.
	gi1 := mlstest.GroupInfo(gid, 1)
	c := mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 100)
	mustCommit(t, s, alice, gid, map[string]any{"commit": c, "group_info": gi1})
	if u, want := used(), before+int64(len(c))+int64(len(gi1))-int64(len(gi0)); u != want {
		t.Fatalf("bytes_used after a commit with a new GroupInfo = %d, want %d", u, want)
	}
}
