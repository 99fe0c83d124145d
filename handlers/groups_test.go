package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// fixtureIndex is mls/testdata/tsmls/index.json.
type fixtureIndex struct {
	Fixtures []struct {
		Name       string   `json:"name"`
		File       string   `json:"file"`
		Ref        string   `json:"ref"`
		GroupID    string   `json:"groupId"`
		NewMembers []string `json:"newMembers"`
	} `json:"fixtures"`
}

type fixtures struct {
	t     *testing.T
	dir   string
	index fixtureIndex
}

func loadFixtures(t *testing.T) *fixtures {
	dir := filepath.Join(testutil.RepoRoot(t), "mls", "testdata", "tsmls")
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixtures{t: t, dir: dir}
	if err := json.Unmarshal(raw, &f.index); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixtures) bytes(name string) []byte {
	for _, x := range f.index.Fixtures {
		if x.Name == name {
			b, err := os.ReadFile(filepath.Join(f.dir, x.File))
			if err != nil {
				f.t.Fatal(err)
			}
			return b
		}
	}
	f.t.Fatalf("no fixture %s", name)
	return nil
}

func (f *fixtures) hex(name, field string) []byte {
	for _, x := range f.index.Fixtures {
		if x.Name == name {
			s := map[string]string{"ref": x.Ref, "groupId": x.GroupID}[field]
			b, err := hex.DecodeString(s)
			if err != nil || len(b) == 0 {
				f.t.Fatalf("fixture %s.%s: %q", name, field, s)
			}
			return b
		}
	}
	f.t.Fatalf("no fixture %s", name)
	return nil
}

func decodeProblem(t *testing.T, r *testutil.Response) problem {
	t.Helper()
	var p problem
	r.JSON(t, &p)
	return p
}

func gpath(gid []byte, rest string) string {
	return "/v1/groups/" + base64.RawURLEncoding.EncodeToString(gid) + rest
}

func createGroup(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte) {
	t.Helper()
	r := s.Do(t, "POST", "/v1/groups", a.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(gid)})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create group: %d %s", r.StatusCode, r.Body)
	}
}

// recordClaim records that claimer claimed owner's key package ref (what the
// key-package claim endpoint does).
func recordClaim(t *testing.T, s *testutil.Server, claimer, owner testutil.Account, ref []byte) {
	t.Helper()
	err := s.Store.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO key_package_claims (claimer_device_id, ref, device_id, claimed_at) VALUES (?, ?, ?, ?)`,
			claimer.DeviceID, ref, owner.DeviceID, models.Millis(tx.Now()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

type commitOut struct {
	Commit         handlers.ReceiptBody          `json:"commit"`
	Epoch          uint64                        `json:"epoch"`
	Welcomes       []handlers.WelcomeReceiptBody `json:"welcomes"`
	AddedDevices   []string                      `json:"added_devices"`
	RemovedDevices []string                      `json:"removed_devices"`
}

func commit(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte, body map[string]any, headers ...string) *testutil.Response {
	t.Helper()
	return s.Do(t, "POST", gpath(gid, "/commits"), a.Token, body, headers...)
}

func mustCommit(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte, body map[string]any) commitOut {
	t.Helper()
	r := commit(t, s, a, gid, body)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("commit: %d %s", r.StatusCode, r.Body)
	}
	var out commitOut
	r.JSON(t, &out)
	return out
}

func send(t *testing.T, s *testutil.Server, a testutil.Account, gid, msg []byte, headers ...string) *testutil.Response {
	t.Helper()
	return s.Do(t, "POST", gpath(gid, "/messages"), a.Token, map[string]any{"message": msg}, headers...)
}

func mustSend(t *testing.T, s *testutil.Server, a testutil.Account, gid, msg []byte) handlers.ReceiptBody {
	t.Helper()
	r := send(t, s, a, gid, msg)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("send: %d %s", r.StatusCode, r.Body)
	}
	var out handlers.ReceiptBody
	r.JSON(t, &out)
	return out
}

// history reads all of a device's visible events of a group and checks that
// seqs and timestamps strictly increase.
func history(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte) []handlers.EventBody {
	t.Helper()
	var all []handlers.EventBody
	after := int64(0)
	for {
		r := s.Do(t, "GET", gpath(gid, "/messages?limit=2&after="+strconv.FormatInt(after, 10)), a.Token, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("history: %d %s", r.StatusCode, r.Body)
		}
		var page struct {
			Events  []handlers.EventBody `json:"events"`
			Next    int64                `json:"next"`
			HasMore bool                 `json:"has_more"`
		}
		r.JSON(t, &page)
		all = append(all, page.Events...)
		after = page.Next
		if !page.HasMore {
			break
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq || !all[i].ServerTime.After(all[i-1].ServerTime) {
			t.Fatalf("history not strictly increasing at %d: %+v then %+v", i, all[i-1], all[i])
		}
	}
	return all
}

func seqs(evs []handlers.EventBody) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func eqSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFixtureGroupLifecycle drives a group with ts-mls bytes: a private
// commit at epoch 0 adding Bob with its Welcome, application messages at
// epoch 1, a public proposal and commit, a private commit at epoch 2.
func TestFixtureGroupLifecycle(t *testing.T) {
	f := loadFixtures(t)
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	carol := s.SeedAccount(t, "carol", models.RoleMember)
	gid := f.hex("commit_add_private", "groupId")
	bobRef := f.hex("kp_bob_s1", "ref")
	createGroup(t, s, alice, gid)

	bundle := map[string]any{
		"commit":     f.bytes("commit_add_private"),
		"welcome":    f.bytes("welcome_add_bob"),
		"group_info": f.bytes("group_info_epoch1"),
	}
	// Bob's key package was claimed by Carol, not by Alice: refused.
	recordClaim(t, s, carol, bob, bobRef)
	r := commit(t, s, alice, gid, bundle)
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "welcome_ref_not_claimed" || p.Index == nil || *p.Index != 0 {
		t.Fatalf("unclaimed welcome ref: %d %s", r.StatusCode, r.Body)
	}
	// A GroupInfo for the wrong epoch is refused.
	r = commit(t, s, alice, gid, map[string]any{"commit": f.bytes("commit_add_private"), "group_info": mlstest.GroupInfo(gid, 5)})
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "group_info_epoch" {
		t.Fatalf("group info of the wrong epoch: %d %s", r.StatusCode, r.Body)
	}
	recordClaim(t, s, alice, bob, bobRef)
	out := mustCommit(t, s, alice, gid, bundle)
	if out.Epoch != 1 || out.Commit.Epoch != 0 || len(out.AddedDevices) != 1 || out.AddedDevices[0] != bob.DeviceID ||
		len(out.Welcomes) != 1 || out.Welcomes[0].DeviceID != bob.DeviceID || out.Welcomes[0].Seq <= out.Commit.Seq {
		t.Fatalf("commit result %+v", out)
	}

	var g handlers.GroupBody
	r = s.Do(t, "GET", gpath(gid, ""), bob.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("bob reads group: %d %s", r.StatusCode, r.Body)
	}
	r.JSON(t, &g)
	if g.Epoch != 1 || len(g.Members) != 2 || g.Members[0].DeviceID != alice.DeviceID || g.Members[1].Username != "bob" ||
		string(g.GroupInfo) != string(f.bytes("group_info_epoch1")) || g.ID != base64.RawURLEncoding.EncodeToString(gid) {
		t.Fatalf("group %+v", g)
	}
	r = s.Do(t, "GET", "/v1/groups", bob.Token, nil)
	if r.StatusCode != http.StatusOK || !json.Valid(r.Body) {
		t.Fatalf("list: %d %s", r.StatusCode, r.Body)
	}
	var list struct{ Groups []handlers.GroupSummaryBody }
	r.JSON(t, &list)
	if len(list.Groups) != 1 || list.Groups[0].Epoch != 1 || list.Groups[0].JoinedSeq != out.Commit.Seq {
		t.Fatalf("bob's groups %+v", list)
	}

	app := mustSend(t, s, alice, gid, f.bytes("private_app_short"))
	if app.Kind != "application" || app.Epoch != 1 || app.Seq <= out.Welcomes[0].Seq {
		t.Fatalf("app receipt %+v", app)
	}
	prop := mustSend(t, s, bob, gid, f.bytes("public_proposal"))
	if prop.Kind != "proposal" {
		t.Fatalf("proposal receipt %+v", prop)
	}
	if c := mustCommit(t, s, alice, gid, map[string]any{"commit": f.bytes("commit_public")}); c.Epoch != 2 {
		t.Fatalf("public commit: %+v", c)
	}
	// A second commit for epoch 1 lost the race: 409 with the current epoch.
	r = commit(t, s, bob, gid, map[string]any{"commit": f.bytes("commit_public")})
	if p := decodeProblem(t, r); r.StatusCode != http.StatusConflict || p.Code != "epoch_mismatch" || p.CurrentEpoch == nil || *p.CurrentEpoch != 2 {
		t.Fatalf("stale commit: %d %s", r.StatusCode, r.Body)
	}
	if c := mustCommit(t, s, alice, gid, map[string]any{"commit": f.bytes("commit_private_epoch2")}); c.Epoch != 3 {
		t.Fatalf("private commit: %+v", c)
	}
	// Epoch 1 is still within current-2 … current at epoch 3, not at 4.
	mustSend(t, s, bob, gid, f.bytes("private_app_1k"))
	mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 3, mls.ContentCommit, nil, 200)})
	r = send(t, s, alice, gid, f.bytes("private_app_short"))
	if p := decodeProblem(t, r); r.StatusCode != http.StatusConflict || p.Code != "epoch_out_of_window" || p.CurrentEpoch == nil || *p.CurrentEpoch != 4 {
		t.Fatalf("old epoch: %d %s", r.StatusCode, r.Body)
	}
	r = send(t, s, alice, gid, mlstest.PrivateMessage(gid, 5, mls.ContentApplication, nil, 100))
	if p := decodeProblem(t, r); r.StatusCode != http.StatusConflict || p.CurrentEpoch == nil || *p.CurrentEpoch != 4 {
		t.Fatalf("future epoch: %d %s", r.StatusCode, r.Body)
	}

	// Bob sees his Welcome and everything after his add, not the commit
	// that added him; Alice sees the commit but not Bob's Welcome.
	bh, ah := history(t, s, bob, gid), history(t, s, alice, gid)
	if bh[0].Kind != "welcome" || bh[0].RecipientDeviceID != bob.DeviceID || string(bh[0].Payload) != string(f.bytes("welcome_add_bob")) {
		t.Fatalf("bob's first event %+v", bh[0])
	}
	if ah[0].Kind != "commit" || ah[0].Seq != out.Commit.Seq || len(ah) != len(bh) {
		t.Fatalf("alice's history %v, bob's %v", seqs(ah), seqs(bh))
	}
	for _, e := range ah {
		if e.Kind == "welcome" {
			t.Fatalf("alice sees bob's welcome")
		}
	}
}

// TestConcurrentCommitsOneWinsPerEpoch: 20 member devices commit at the
// same epoch at once, 20 times over: exactly one 201 each time, and
// nineteen 409s carrying the new epoch.
func TestConcurrentCommitsOneWinsPerEpoch(t *testing.T) {
	s := testutil.NewServer(t)
	const n = 20
	accs := make([]testutil.Account, n)
	refs := make([][]byte, 0, n-1)
	for i := range accs {
		accs[i] = s.SeedAccount(t, fmt.Sprintf("user%02d", i), models.RoleMember)
	}
	gid := []byte("concurrent-commits-group")
	createGroup(t, s, accs[0], gid)
	for i := 1; i < n; i++ {
		ref := mlstest.Ref()
		recordClaim(t, s, accs[0], accs[i], ref)
		refs = append(refs, ref)
	}
	out := mustCommit(t, s, accs[0], gid, map[string]any{
		"commit":  mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 300),
		"welcome": mlstest.Welcome(refs...),
	})
	if len(out.AddedDevices) != n-1 {
		t.Fatalf("added %d devices", len(out.AddedDevices))
	}
	epoch := uint64(1)
	for round := 0; round < 20; round++ {
		codes := make([]int, n)
		probs := make([]problem, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range accs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				body := map[string]any{"commit": mlstest.PrivateMessage(gid, epoch, mls.ContentCommit, nil, 300),
					"group_info": mlstest.GroupInfo(gid, epoch+1)}
				<-start
				r := commit(t, s, accs[i], gid, body)
				codes[i] = r.StatusCode
				if r.StatusCode == http.StatusConflict {
					_ = json.Unmarshal(r.Body, &probs[i])
				}
			}(i)
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, c := range codes {
			switch c {
			case http.StatusCreated:
				wins++
			case http.StatusConflict:
				if probs[i].CurrentEpoch == nil || *probs[i].CurrentEpoch != epoch+1 || probs[i].Code != "epoch_mismatch" {
					t.Fatalf("round %d: 409 without the new epoch: %+v", round, probs[i])
				}
			default:
				t.Fatalf("round %d: status %d", round, c)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d commits won epoch %d", round, wins, epoch)
		}
		epoch++
	}
	var g handlers.GroupBody
	s.Do(t, "GET", gpath(gid, ""), accs[5].Token, nil).JSON(t, &g)
	if g.Epoch != epoch {
		t.Fatalf("group epoch %d, want %d", g.Epoch, epoch)
	}
	// Exactly one commit stored per epoch.
	var commits int
	if err := s.Store.ReadDB().NewRaw(`SELECT COUNT(*) FROM events WHERE kind = 'commit' AND group_id = ?`, gid).Scan(context.Background(), &commits); err != nil {
		t.Fatal(err)
	}
	if commits != int(epoch) {
		t.Fatalf("%d commits stored for %d epochs", commits, epoch)
	}
}

// TestNonMemberLearnsNothing: a non-member gets the same 403 for a group
// that exists and one that does not, on every operation.
func TestNonMemberLearnsNothing(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	mallory := s.SeedAccount(t, "mallory", models.RoleMember)
	real, ghost := []byte("real-group"), []byte("ghost-group")
	createGroup(t, s, alice, real)
	ops := []struct {
		name string
		do   func(gid []byte) *testutil.Response
	}{
		{"get", func(gid []byte) *testutil.Response { return s.Do(t, "GET", gpath(gid, ""), mallory.Token, nil) }},
		{"history", func(gid []byte) *testutil.Response {
			return s.Do(t, "GET", gpath(gid, "/messages"), mallory.Token, nil)
		}},
		{"send", func(gid []byte) *testutil.Response {
			return send(t, s, mallory, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))
		}},
		{"commit", func(gid []byte) *testutil.Response {
			return commit(t, s, mallory, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 50)})
		}},
	}
	for _, op := range ops {
		a, b := op.do(real), op.do(ghost)
		if a.StatusCode != http.StatusForbidden || b.StatusCode != http.StatusForbidden || string(a.Body) != string(b.Body) {
			t.Fatalf("%s: existing group %d %s; missing group %d %s", op.name, a.StatusCode, a.Body, b.StatusCode, b.Body)
		}
		if p := decodeProblem(t, a); p.Code != "not_member" {
			t.Fatalf("%s: %s", op.name, a.Body)
		}
	}
	if r := s.Do(t, "GET", gpath(real, ""), "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", r.StatusCode)
	}
	// Creating a taken id answers as every other operation does
	// (TestCreateGroupIsNoProbe).
}

// TestBadMLSBytes: bytes that don't parse, another group's id, wrong wire
// format or version: 422 with a precise code; 64 KiB + 1 → 413.
func TestBadMLSBytes(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("bytes-group")
	createGroup(t, s, alice, gid)
	notMLS10 := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50)
	notMLS10[1] = 2
	tests := []struct {
		name string
		msg  []byte
		code string
	}{
		{"garbage", []byte("hello, this is not MLS"), "invalid_mls"},
		{"truncated", mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50)[:30], "invalid_mls"},
		{"not mls10", notMLS10, "invalid_mls"},
		{"other group", mlstest.PrivateMessage([]byte("other-group"), 0, mls.ContentApplication, nil, 50), "group_id_mismatch"},
		{"welcome", mlstest.Welcome(mlstest.Ref()), "wrong_wire_format"},
		{"commit as message", mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 50), "commit_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, s, alice, gid, tt.msg)
			if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != tt.code {
				t.Fatalf("%d %s, want 422 %s", r.StatusCode, r.Body, tt.code)
			}
		})
	}
	r := commit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage([]byte("other-group"), 0, mls.ContentCommit, nil, 50)})
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "group_id_mismatch" {
		t.Fatalf("commit for another group: %d %s", r.StatusCode, r.Body)
	}
	r = commit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50)})
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "not_a_commit" {
		t.Fatalf("application as commit: %d %s", r.StatusCode, r.Body)
	}

	max := s.Config.Limits.MaxMessageBytes
	mustSend(t, s, alice, gid, mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, max))
	r = send(t, s, alice, gid, mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, max+1))
	if p := decodeProblem(t, r); r.StatusCode != http.StatusRequestEntityTooLarge || p.Code != "message_too_large" {
		t.Fatalf("64 KiB + 1: %d %s", r.StatusCode, r.Body)
	}
	r = commit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessageSize(gid, 0, mls.ContentCommit, max+1)})
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("commit of 64 KiB + 1: %d %s", r.StatusCode, r.Body)
	}
	// Far beyond: the body limit answers before decoding.
	r = send(t, s, alice, gid, make([]byte, 4*max))
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %d", r.StatusCode)
	}
}

// TestGroupQuota: a full group answers 507 group_quota_exceeded.
func TestGroupQuota(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.GroupQuotaBytes = 65536 })
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("quota-group")
	createGroup(t, s, alice, gid)
	mustSend(t, s, alice, gid, mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, 60000))
	r := send(t, s, alice, gid, mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, 10000))
	if p := decodeProblem(t, r); r.StatusCode != http.StatusInsufficientStorage || p.Code != "group_quota_exceeded" {
		t.Fatalf("over quota: %d %s", r.StatusCode, r.Body)
	}
	mustSend(t, s, alice, gid, mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, 5000))
}

// TestMessageRateLimit: the 61st message within a minute gets 429 with
// Retry-After.
func TestMessageRateLimit(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("rate-group")
	createGroup(t, s, alice, gid)
	start := time.Now()
	accepted := 0
	var last *testutil.Response
	for i := 0; i < 200; i++ {
		last = send(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))
		if last.StatusCode != http.StatusCreated {
			break
		}
		accepted++
	}
	// The bucket holds 60 and refills one per second: a slow machine may
	// earn a token or two while sending.
	if limit := 60 + int(time.Since(start).Seconds()); accepted < 60 || accepted > limit {
		t.Fatalf("accepted %d messages before refusal, want 60 (up to %d)", accepted, limit)
	}
	if p := decodeProblem(t, last); last.StatusCode != http.StatusTooManyRequests || p.Code != "rate_limited" {
		t.Fatalf("message %d: %d %s", accepted+1, last.StatusCode, last.Body)
	}
	if ra, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	// Commits share the budget; another user is unaffected.
	if r := commit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 50)}); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("commit over budget: %d", r.StatusCode)
	}
	s.Clock.Advance(time.Minute)
	mustSend(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))
}

// TestIdempotentRetry: a retried send with the same Idempotency-Key returns
// the same id and seq and stores one row; a different request under the
// same key is refused; commit retries return the original result.
func TestIdempotentRetry(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("idempotent-group")
	createGroup(t, s, alice, gid)
	msg := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 100)
	key := "6b7e4a1c-2f0d-4c3b-9a8e-1d2c3b4a5f60"
	var first, again handlers.ReceiptBody
	r1 := send(t, s, alice, gid, msg, "Idempotency-Key", key)
	r2 := send(t, s, alice, gid, msg, "Idempotency-Key", key)
	if r1.StatusCode != http.StatusCreated || r2.StatusCode != http.StatusCreated {
		t.Fatalf("sends: %d %s / %d %s", r1.StatusCode, r1.Body, r2.StatusCode, r2.Body)
	}
	r1.JSON(t, &first)
	r2.JSON(t, &again)
	if first != again || !first.ServerTime.Equal(again.ServerTime) {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}
	if r1.Header.Get("Idempotent-Replayed") != "false" || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("Idempotent-Replayed %q then %q", r1.Header.Get("Idempotent-Replayed"), r2.Header.Get("Idempotent-Replayed"))
	}
	countRows := func() int {
		var n int
		if err := s.Store.ReadDB().NewRaw(`SELECT COUNT(*) FROM events WHERE group_id = ?`, gid).Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countRows(); n != 1 {
		t.Fatalf("%d rows stored", n)
	}
	// Concurrent retries of one new key: still one row.
	msg2 := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 100)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var rb handlers.ReceiptBody
			r := send(t, s, alice, gid, msg2, "Idempotency-Key", "k2")
			if r.StatusCode == http.StatusCreated {
				_ = json.Unmarshal(r.Body, &rb)
			}
			ids[i] = rb.ID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent retries answered %v", ids)
		}
	}
	if n := countRows(); n != 2 {
		t.Fatalf("%d rows stored after concurrent retries", n)
	}
	// Same key, different body: refused.
	r := send(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 100), "Idempotency-Key", key)
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "idempotency_key_reused" {
		t.Fatalf("key reuse: %d %s", r.StatusCode, r.Body)
	}
	// Keys are per device: Bob may use the same key for his own request.
	ref := mlstest.Ref()
	recordClaim(t, s, alice, bob, ref)
	body := map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 100), "welcome": mlstest.Welcome(ref)}
	c1 := commit(t, s, alice, gid, body, "Idempotency-Key", "commit-1")
	c2 := commit(t, s, alice, gid, body, "Idempotency-Key", "commit-1") // the epoch moved on: still the first answer
	if c1.StatusCode != http.StatusCreated || c2.StatusCode != http.StatusCreated || string(c1.Body) != string(c2.Body) {
		t.Fatalf("commit retry: %d %s / %d %s", c1.StatusCode, c1.Body, c2.StatusCode, c2.Body)
	}
	mustSend(t, s, bob, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 100))
	if r := send(t, s, bob, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 100), "Idempotency-Key", key); r.StatusCode != http.StatusCreated {
		t.Fatalf("bob with alice's key: %d %s", r.StatusCode, r.Body)
	}
}

// TestMembershipIntervals: a removed device receives the removing commit
// and nothing after it; an added device receives its Welcome and every
// message after its add, none before. A revoked device is cut off at once
// and the group gets a remove_device notice.
func TestMembershipIntervals(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	carol := s.SeedAccount(t, "carol", models.RoleMember)
	dave := s.SeedAccount(t, "dave", models.RoleMember)
	gid := []byte("intervals-group")
	createGroup(t, s, alice, gid)
	m0 := mustSend(t, s, alice, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 60))
	refB, refC, refD := mlstest.Ref(), mlstest.Ref(), mlstest.Ref()
	recordClaim(t, s, alice, bob, refB)
	recordClaim(t, s, alice, carol, refC)
	recordClaim(t, s, alice, dave, refD)
	c1 := mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 60), "welcome": mlstest.Welcome(refB)})
	m1 := mustSend(t, s, alice, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 60))
	c2 := mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 60), "welcome": mlstest.Welcome(refC, refD)})
	m2 := mustSend(t, s, bob, gid, mlstest.PrivateMessage(gid, 2, mls.ContentApplication, nil, 60))
	c3 := mustCommit(t, s, carol, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 2, mls.ContentCommit, nil, 60), "removed_devices": []string{bob.DeviceID}})
	if len(c3.RemovedDevices) != 1 || c3.RemovedDevices[0] != bob.DeviceID {
		t.Fatalf("c3 %+v", c3)
	}
	m3 := mustSend(t, s, alice, gid, mlstest.PrivateMessage(gid, 3, mls.ContentApplication, nil, 60))

	want := func(name string, a testutil.Account, exp []int64) {
		t.Helper()
		if got := seqs(history(t, s, a, gid)); !eqSeqs(got, exp) {
			t.Fatalf("%s sees %v, want %v", name, got, exp)
		}
	}
	welcomeOf := func(c commitOut, d string) int64 {
		for _, w := range c.Welcomes {
			if w.DeviceID == d {
				return w.Seq
			}
		}
		t.Fatalf("no welcome for %s", d)
		return 0
	}
	want("alice", alice, []int64{m0.Seq, c1.Commit.Seq, m1.Seq, c2.Commit.Seq, m2.Seq, c3.Commit.Seq, m3.Seq})
	want("bob", bob, []int64{welcomeOf(c1, bob.DeviceID), m1.Seq, c2.Commit.Seq, m2.Seq, c3.Commit.Seq})
	want("carol", carol, []int64{welcomeOf(c2, carol.DeviceID), m2.Seq, c3.Commit.Seq, m3.Seq})

	// Bob is out: no reads of the group, no sends.
	if r := send(t, s, bob, gid, mlstest.PrivateMessage(gid, 3, mls.ContentApplication, nil, 60)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("removed device sends: %d", r.StatusCode)
	}
	if r := s.Do(t, "GET", gpath(gid, ""), bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("removed device reads group: %d", r.StatusCode)
	}

	// Dave revokes his lost device through the API: it is cut off at once
	// and the group is told.
	if r := s.Do(t, "DELETE", "/v1/me/devices/"+dave.DeviceID, dave.Token, nil); r.StatusCode/100 != 2 {
		t.Fatalf("revoke device: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/me", dave.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked device's token: %d", r.StatusCode)
	}
	m4 := mustSend(t, s, alice, gid, mlstest.PrivateMessage(gid, 3, mls.ContentApplication, nil, 60))
	ah := history(t, s, alice, gid)
	notice := ah[len(ah)-2]
	var n models.RemoveDeviceNotice
	if err := json.Unmarshal(notice.Payload, &n); err != nil || notice.Kind != "notice" || n.Type != "remove_device" || n.DeviceID != dave.DeviceID || n.UserID != dave.UserID {
		t.Fatalf("notice %+v (%s)", notice, notice.Payload)
	}
	// Dave's token is dead, so read his device's feed from the store: it
	// ends where the revocation cut it.
	daveEvents, _, err := s.Store.GroupHistory(context.Background(), dave.DeviceID, gid, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var daveSeqs []int64
	for _, e := range daveEvents {
		daveSeqs = append(daveSeqs, e.Seq)
	}
	if exp := []int64{welcomeOf(c2, dave.DeviceID), m2.Seq, c3.Commit.Seq, m3.Seq}; !eqSeqs(daveSeqs, exp) {
		t.Fatalf("revoked dave sees %v, want %v", daveSeqs, exp)
	}
	if ah[len(ah)-1].Seq != m4.Seq {
		t.Fatalf("alice's last event %+v", ah[len(ah)-1])
	}
	// The members' Remove of Dave is accepted.
	mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 3, mls.ContentCommit, nil, 60), "removed_devices": []string{dave.DeviceID}})
}

// TestSendMessageBodyChecks: the send operation skips Huma's generic body
// validation for speed; its own checks still refuse what the schema
// forbids.
func TestSendMessageBodyChecks(t *testing.T) {
	s := testutil.NewServer(t)
	a := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("body-checks-group-0001")
	if r := s.Do(t, "POST", "/v1/groups", a.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(gid)}); r.StatusCode != 201 {
		t.Fatalf("create group: %d %s", r.StatusCode, r.Body)
	}
	path := "/v1/groups/" + base64.RawURLEncoding.EncodeToString(gid) + "/messages"
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"missing message", `{}`, 422},
		{"empty message", `{"message":""}`, 422},
		{"null message", `{"message":null}`, 422},
		{"not base64", `{"message":"@@@@"}`, 422},
		{"not an object", `[1,2]`, 422},
		{"not JSON", `{"message":`, 422},
		{"not MLS", `{"message":"AAAA"}`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(t, "POST", path, a.Token, []byte(tc.body))
			if r.StatusCode != tc.want {
				t.Fatalf("%s: %d %s, want %d", tc.body, r.StatusCode, r.Body, tc.want)
			}
		})
	}
	msg := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 64)
	body := `{"message":"` + base64.StdEncoding.EncodeToString(msg) + `"}`
	if r := s.Do(t, "POST", path, a.Token, []byte(body)); r.StatusCode != 201 {
		t.Fatalf("valid message: %d %s", r.StatusCode, r.Body)
	}
}
