package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

func ident(a testutil.Account) string { return models.KeyPackageIdentity(a.DeviceID) }

// feed reads every event of a device's feed (long-poll, no wait).
func feed(t *testing.T, s *testutil.Server, a testutil.Account) []handlers.EventBody {
	t.Helper()
	var out []handlers.EventBody
	after := int64(0)
	for {
		r := s.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&timeout=0&limit=1000", after), a.Token, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("sync: %d %s", r.StatusCode, r.Body)
		}
		var page struct {
			Events  []handlers.EventBody `json:"events"`
			Next    int64                `json:"next"`
			HasMore bool                 `json:"has_more"`
		}
		r.JSON(t, &page)
		out = append(out, page.Events...)
		after = page.Next
		if !page.HasMore {
			return out
		}
	}
}

func noticeTypes(evs []handlers.EventBody) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == "notice" {
			var n struct{ Type string }
			_ = json.Unmarshal(e.Payload, &n)
			out = append(out, n.Type)
		}
	}
	return out
}

func groupInfoOf(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte) (*testutil.Response, handlers.GroupInfoOutput) {
	t.Helper()
	r := s.Do(t, "GET", gpath(gid, "/group-info"), a.Token, nil)
	var out handlers.GroupInfoOutput
	if r.StatusCode == http.StatusOK {
		r.JSON(t, &out.Body)
	}
	return r, out
}

func countRows(t *testing.T, s *testutil.Server, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Store.ReadDB().NewRaw(query, args...).Scan(context.Background(), &n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestExternalJoin: Bob's new device fetches the GroupInfo of a group his
// other device is in and joins by external commit; non-members, forged
// credentials, stale epochs and removes of other users' leaves are refused.
func TestExternalJoin(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	carol := s.SeedAccount(t, "carol", models.RoleMember)
	gids := [][]byte{[]byte("external-join-group-0001"), []byte("external-join-group-0002"), []byte("external-join-group-0003")}
	for _, gid := range gids {
		createGroup(t, s, alice, gid)
		joinGroup(t, s, bob, gid)
		mustCommit(t, s, alice, gid, map[string]any{
			"commit":     mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 64),
			"group_info": mlstest.GroupInfoWithTree(gid, 1, ident(alice), ident(bob)),
		})
	}
	bob2 := s.SeedDevice(t, bob, "")
	gid := gids[0]
	var joinable struct{ Groups []handlers.GroupSummaryBody }
	s.Do(t, "GET", "/v1/me/groups", bob2.Token, nil).JSON(t, &joinable)
	if len(joinable.Groups) != 3 {
		t.Fatalf("joinable groups: %+v", joinable.Groups)
	}
	s.Do(t, "GET", "/v1/me/groups", carol.Token, nil).JSON(t, &joinable)
	if len(joinable.Groups) != 0 {
		t.Fatalf("carol's joinable groups: %+v", joinable.Groups)
	}

	// Who may read the GroupInfo.
	if r, gi := groupInfoOf(t, s, bob2, gid); r.StatusCode != http.StatusOK || gi.Body.Epoch != 1 || len(gi.Body.GroupInfo) == 0 {
		t.Fatalf("bob2 group info: %d %s", r.StatusCode, r.Body)
	}
	if r, _ := groupInfoOf(t, s, bob, gid); r.StatusCode != http.StatusOK {
		t.Fatalf("member's own group info: %d", r.StatusCode)
	}
	r1, _ := groupInfoOf(t, s, carol, gid)
	r2, _ := groupInfoOf(t, s, carol, []byte("no-such-group-at-all-0001"))
	if r1.StatusCode != http.StatusForbidden || r2.StatusCode != http.StatusForbidden || !bytes.Equal(r1.Body, r2.Body) {
		t.Fatalf("carol: %d %s / %d %s", r1.StatusCode, r1.Body, r2.StatusCode, r2.Body)
	}

	ext := func(a testutil.Account, epoch uint64, identity string, removes ...uint32) *testutil.Response {
		return commit(t, s, a, gid, map[string]any{
			"commit":     mlstest.ExternalCommit(gid, epoch, identity, removes...),
			"group_info": mlstest.GroupInfoWithTree(gid, epoch+1, ident(alice), ident(bob), ident(a)),
		})
	}
	expect := func(r *testutil.Response, status int, code string) {
		t.Helper()
		if r.StatusCode != status {
			t.Fatalf("want %d %s, got %d %s", status, code, r.StatusCode, r.Body)
		}
		if p := decodeProblem(t, r); p.Code != code {
			t.Fatalf("want code %s, got %s (%s)", code, p.Code, p.Detail)
		}
	}
	expect(ext(carol, 1, ident(carol)), http.StatusForbidden, "not_member")
	expect(ext(bob2, 1, ident(bob)), http.StatusUnprocessableEntity, "external_commit_identity")
	expect(ext(bob2, 1, "sovereign:device:"+alice.DeviceID), http.StatusUnprocessableEntity, "external_commit_identity")
	r := ext(bob2, 0, ident(bob2))
	expect(r, http.StatusConflict, "epoch_mismatch")
	if p := decodeProblem(t, r); p.CurrentEpoch == nil || *p.CurrentEpoch != 1 {
		t.Fatalf("current_epoch %v", p.CurrentEpoch)
	}
	expect(ext(bob2, 1, ident(bob2), 0), http.StatusUnprocessableEntity, "external_remove_not_own")
	expect(commit(t, s, bob2, gid, map[string]any{"commit": mlstest.PublicCommit(gid, 1, 0, 0)}), http.StatusForbidden, "not_member")

	// Bob's second device joins all three groups and reads new messages.
	for _, g := range gids {
		out := mustCommit(t, s, bob2, g, map[string]any{
			"commit":     mlstest.ExternalCommit(g, 1, ident(bob2)),
			"group_info": mlstest.GroupInfoWithTree(g, 2, ident(alice), ident(bob), ident(bob2)),
		})
		if out.Epoch != 2 || !slices.Equal(out.AddedDevices, []string{bob2.DeviceID}) {
			t.Fatalf("external join: %+v", out)
		}
		msg := mustSend(t, s, alice, g, mlstest.PrivateMessage(g, 2, mls.ContentApplication, nil, 40))
		h := history(t, s, bob2, g)
		if len(h) != 1 || h[0].Seq != msg.Seq {
			t.Fatalf("bob2 history of %s: %v", g, seqs(h))
		}
		// Alice and Bob's first device got the external commit.
		found := false
		for _, e := range history(t, s, alice, g) {
			found = found || e.Kind == "commit" && e.SenderDeviceID == bob2.DeviceID
		}
		if !found {
			t.Fatal("alice did not receive the external commit")
		}
	}
	r = s.Do(t, "GET", "/v1/groups", bob2.Token, nil)
	var list struct{ Groups []handlers.GroupSummaryBody }
	r.JSON(t, &list)
	if len(list.Groups) != 3 {
		t.Fatalf("bob2 groups: %+v", list.Groups)
	}
	s.Do(t, "GET", "/v1/me/groups", bob2.Token, nil).JSON(t, &joinable)
	if len(joinable.Groups) != 0 {
		t.Fatalf("bob2 still has joinable groups: %+v", joinable.Groups)
	}

	// A resync: bob2 rejoins (remove its old leaf 2) and stays a member.
	out := mustCommit(t, s, bob2, gid, map[string]any{
		"commit":     mlstest.ExternalCommit(gid, 2, ident(bob2), 2),
		"group_info": mlstest.GroupInfoWithTree(gid, 3, ident(alice), ident(bob), ident(bob2)),
	})
	if out.Epoch != 3 || len(out.AddedDevices) != 0 || len(out.RemovedDevices) != 0 {
		t.Fatalf("resync: %+v", out)
	}
	// A third device replaces bob's first device (its own user's leaf 1).
	bob3 := s.SeedDevice(t, bob, "")
	out = mustCommit(t, s, bob3, gid, map[string]any{
		"commit":     mlstest.ExternalCommit(gid, 3, ident(bob3), 1),
		"group_info": mlstest.GroupInfoWithTree(gid, 4, ident(alice), "", ident(bob2), ident(bob3)),
	})
	if !slices.Equal(out.RemovedDevices, []string{bob.DeviceID}) {
		t.Fatalf("replace old device: %+v", out)
	}
	if r := s.Do(t, "GET", gpath(gid, ""), bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("replaced device still a member: %d", r.StatusCode)
	}
	// A commit without a GroupInfo leaves none to join from.
	mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 4, mls.ContentCommit, nil, 64)})
	bob4 := s.SeedDevice(t, bob, "")
	if r, _ := groupInfoOf(t, s, bob4, gid); r.StatusCode != http.StatusConflict {
		t.Fatalf("no group info: %d %s", r.StatusCode, r.Body)
	}
}

// TestExternalJoinRace: an external join and a member commit race for the
// same epoch, 20 rounds: exactly one wins each time, the other gets 409
// with the current epoch.
func TestExternalJoinRace(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("external-join-race-group-01")
	createGroup(t, s, alice, gid)
	joinGroup(t, s, bob, gid)
	mustCommit(t, s, alice, gid, map[string]any{
		"commit":     mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 64),
		"group_info": mlstest.GroupInfoWithTree(gid, 1, ident(alice), ident(bob)),
	})
	epoch := uint64(1)
	externalWins := 0
	for round := 0; round < 20; round++ {
		joiner := s.SeedDevice(t, bob, "")
		bodies := []struct {
			who  testutil.Account
			body map[string]any
		}{
			{joiner, map[string]any{"commit": mlstest.ExternalCommit(gid, epoch, ident(joiner)),
				"group_info": mlstest.GroupInfoWithTree(gid, epoch+1, ident(alice), ident(bob), ident(joiner))}},
			{alice, map[string]any{"commit": mlstest.PrivateMessage(gid, epoch, mls.ContentCommit, nil, 64),
				"group_info": mlstest.GroupInfoWithTree(gid, epoch+1, ident(alice), ident(bob))}},
		}
		status := make([]int, 2)
		current := make([]*uint64, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, b := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := commit(t, s, b.who, gid, b.body)
				status[i] = r.StatusCode
				if r.StatusCode == http.StatusConflict {
					current[i] = decodeProblem(t, r).CurrentEpoch
				}
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for i := range status {
			switch status[i] {
			case http.StatusCreated:
				wins++
				if i == 0 {
					externalWins++
				}
			case http.StatusConflict:
				if current[i] == nil || *current[i] != epoch+1 {
					t.Fatalf("round %d: loser's current_epoch %v", round, current[i])
				}
			default:
				t.Fatalf("round %d: status %v", round, status)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d winners (%v)", round, wins, status)
		}
		epoch++
	}
	var cur int64
	if err := s.Store.ReadDB().NewRaw(`SELECT epoch FROM groups WHERE id = ?`, gid).Scan(context.Background(), &cur); err != nil || cur != 21 {
		t.Fatalf("epoch %d, %v", cur, err)
	}
	t.Logf("external commit won %d of 20 rounds", externalWins)
}

// TestLeaveGroup: a self-Remove proposal ends the device's membership at
// once; the next commit must include it; the last member leaving deletes
// the group and its events.
func TestLeaveGroup(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("leave-group-test-group-01")
	createGroup(t, s, alice, gid)
	joinGroup(t, s, bob, gid)
	mustCommit(t, s, alice, gid, map[string]any{
		"commit":     mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 64),
		"group_info": mlstest.GroupInfoWithTree(gid, 1, ident(alice), ident(bob)),
	})
	leave := func(a testutil.Account, p []byte) *testutil.Response {
		return s.Do(t, "POST", gpath(gid, "/leave"), a.Token, map[string]any{"proposal": p})
	}
	for _, c := range []struct {
		p    []byte
		code string
	}{
		{mlstest.RemoveProposal(gid, 1, 1, 0), "not_a_self_remove"},
		{mlstest.RemoveProposal(gid, 1, 0, 0), "self_remove_wrong_leaf"},
		{mlstest.PrivateMessage(gid, 1, mls.ContentProposal, nil, 40), "not_a_self_remove"},
		{mlstest.RemoveProposal(gid, 0, 1, 1), "epoch_mismatch"},
	} {
		r := leave(bob, c.p)
		if p := decodeProblem(t, r); p.Code != c.code {
			t.Fatalf("want %s, got %d %s", c.code, r.StatusCode, r.Body)
		}
	}
	if r := leave(s.SeedAccount(t, "carol", models.RoleMember), mlstest.RemoveProposal(gid, 1, 1, 1)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("non-member leave: %d", r.StatusCode)
	}
	r := leave(bob, mlstest.RemoveProposal(gid, 1, 1, 1))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("leave: %d %s", r.StatusCode, r.Body)
	}
	var lo handlers.LeaveGroupOutput
	r.JSON(t, &lo.Body)
	if lo.Body.GroupDeleted {
		t.Fatal("group deleted with alice still in it")
	}
	// Bob is out at once: his history ends with his proposal.
	h := history(t, s, bob, gid)
	if len(h) == 0 || h[len(h)-1].Seq != lo.Body.Proposal.Seq {
		t.Fatalf("bob's history %v, proposal %d", seqs(h), lo.Body.Proposal.Seq)
	}
	if r := send(t, s, bob, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 20)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("bob sends after leaving: %d", r.StatusCode)
	}
	// Alice received the proposal.
	found := false
	for _, e := range history(t, s, alice, gid) {
		found = found || e.Seq == lo.Body.Proposal.Seq
	}
	if !found {
		t.Fatal("alice did not receive the proposal")
	}
	// An external join would drop it: refused until committed.
	bob2 := s.SeedDevice(t, bob, "")
	if r := commit(t, s, bob2, gid, map[string]any{"commit": mlstest.ExternalCommit(gid, 1, ident(bob2))}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("external join after bob left: %d %s", r.StatusCode, r.Body)
	}
	// The next commit must include it.
	r = commit(t, s, alice, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 64)})
	if p := decodeProblem(t, r); r.StatusCode != http.StatusUnprocessableEntity || p.Code != "pending_removal_missing" {
		t.Fatalf("commit without the removal: %d %s", r.StatusCode, r.Body)
	}
	mustCommit(t, s, alice, gid, map[string]any{"commit": mlstest.PublicCommit(gid, 1, 0, 1), "removed_devices": []string{bob.DeviceID},
		"group_info": mlstest.GroupInfoWithTree(gid, 2, ident(alice))})
	if n := countRows(t, s, `SELECT count(*) FROM pending_removals`); n != 0 {
		t.Fatalf("%d pending removals left", n)
	}
	// The last member leaves: the group goes with everything in it.
	r = leave(alice, mlstest.RemoveProposal(gid, 2, 0, 0))
	r.JSON(t, &lo.Body)
	if r.StatusCode != http.StatusCreated || !lo.Body.GroupDeleted {
		t.Fatalf("last leave: %d %s", r.StatusCode, r.Body)
	}
	for _, q := range []string{`SELECT count(*) FROM groups WHERE id = ?`, `SELECT count(*) FROM events WHERE group_id = ?`,
		`SELECT count(*) FROM group_members WHERE group_id = ?`, `SELECT count(*) FROM pending_removals WHERE group_id = ?`} {
		if n := countRows(t, s, q, gid); n != 0 {
			t.Errorf("%s: %d rows left", q, n)
		}
	}
	// The id can be used again, from scratch.
	createGroup(t, s, bob, gid)
}

// TestNewDeviceNotice: a new device's sign-in is announced to the user's
// other devices, not to itself; the first device gets none, nor does
// signing in again on a known device.
func TestNewDeviceNotice(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	if got := noticeTypes(feed(t, s, alice)); len(got) != 0 {
		t.Fatalf("first device got notices %v", got)
	}
	phone := s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceName: "Alice's phone"})
	if phone.DeviceID == alice.DeviceID {
		t.Fatal("not a new device")
	}
	evs := feed(t, s, alice)
	if got := noticeTypes(evs); !slices.Equal(got, []string{"new_device"}) {
		t.Fatalf("first device notices %v", got)
	}
	var n models.NewDeviceNotice
	if err := json.Unmarshal(evs[len(evs)-1].Payload, &n); err != nil {
		t.Fatal(err)
	}
	if n.DeviceID != phone.DeviceID || n.DeviceName != "Alice's phone" || n.UserID != alice.UserID || n.CreatedAt == "" {
		t.Fatalf("notice %+v", n)
	}
	if got := noticeTypes(feed(t, s, phone)); len(got) != 0 {
		t.Fatalf("new device got notices %v", got)
	}
	s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceID: phone.DeviceID})
	if got := noticeTypes(feed(t, s, alice)); len(got) != 1 {
		t.Fatalf("re-login announced: %v", got)
	}
	// A revoked device is not told.
	if r := s.Do(t, "DELETE", "/v1/me/devices/"+phone.DeviceID, alice.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatal(r.StatusCode)
	}
	s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceName: "laptop"})
	if n := countRows(t, s, `SELECT count(*) FROM events WHERE recipient_device_id = ?`, phone.DeviceID); n != 0 {
		t.Fatalf("revoked device got %d notices", n)
	}
}

// TestDeleteOwnAccount: a step-up and the username are needed; then
// the account leaves its groups (single-member groups are deleted) and no
// row of it remains.
func TestDeleteOwnAccount(t *testing.T) {
	s := testutil.NewServer(t)
	s.SeedAccount(t, "root", models.RoleAdmin)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	alice, alicePasskey := s.RegisterMember(t, "alice")
	shared, solo := []byte("delete-account-shared-01"), []byte("delete-account-solo-0001")
	createGroup(t, s, alice, shared)
	joinGroup(t, s, bob, shared)
	createGroup(t, s, alice, solo)
	s.UploadKeyPackages(t, alice, 2, true)

	del := func(a testutil.Account, confirm, grant string) *testutil.Response {
		if grant == "" {
			return s.Do(t, "DELETE", "/v1/me", a.Token, map[string]any{"confirm_username": confirm})
		}
		return s.Do(t, "DELETE", "/v1/me", a.Token, map[string]any{"confirm_username": confirm}, "Sovereign-Step-Up", grant)
	}
	if r := del(alice, "bob", ""); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong confirmation: %d %s", r.StatusCode, r.Body)
	}
	// A token alone (a fresh one, even) is not enough, nor a grant made for
	// another operation.
	r := del(alice, "alice", "")
	if p := decodeProblem(t, r); r.StatusCode != http.StatusForbidden || p.Code != "step_up_required" {
		t.Fatalf("without a step-up: %d %s", r.StatusCode, r.Body)
	}
	other := s.StepUp(t, alice.Token, alicePasskey, "end_other_sessions", "")
	if r := del(alice, "alice", other); r.StatusCode != http.StatusForbidden {
		t.Fatalf("with another operation's grant: %d %s", r.StatusCode, r.Body)
	}
	if r := del(alice, "alice", s.StepUp(t, alice.Token, alicePasskey, "delete_account", "")); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/me", alice.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token still works: %d", r.StatusCode)
	}
	for _, q := range []string{
		`SELECT count(*) FROM users WHERE id = ?`, `SELECT count(*) FROM devices WHERE user_id = ?`,
		`SELECT count(*) FROM sessions WHERE user_id = ?`, `SELECT count(*) FROM credentials WHERE user_id = ?`,
	} {
		if n := countRows(t, s, q, alice.UserID); n != 0 {
			t.Errorf("%s: %d rows", q, n)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM key_packages WHERE device_id = ?`, `SELECT count(*) FROM group_members WHERE device_id = ?`,
		`SELECT count(*) FROM events WHERE recipient_device_id = ?`} {
		if n := countRows(t, s, q, alice.DeviceID); n != 0 {
			t.Errorf("%s: %d rows", q, n)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM groups WHERE id = ?`, solo); n != 0 {
		t.Error("alice's single-member group survived")
	}
	got := notices(t, s, bob, shared)
	if len(got) != 1 || got[0].DeviceID != alice.DeviceID || got[0].Reason != "user_deleted" {
		t.Fatalf("bob's notices %+v", got)
	}
	if n := countRows(t, s, `SELECT count(*) FROM audit_log WHERE action = 'account.delete' AND target_id = ?`, alice.UserID); n != 1 {
		t.Errorf("%d audit entries", n)
	}
	// The last admin cannot delete their own account.
	root, _ := s.RegisterAdmin(t, "root2")
	if r := s.Do(t, "DELETE", "/v1/admin/users/"+root.UserID, root.Token, nil); r.StatusCode == http.StatusNoContent {
		t.Fatal("admin deleted themselves through the admin API")
	}
}

// TestKeyPackageExpiryNotice: a device is told once per suite when its
// packages near the end of their lifetime.
func TestKeyPackageExpiryNotice(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	s.UploadKeyPackages(t, alice, 3, true)
	ctx := context.Background()
	if n, err := s.Store.NotifyExpiringKeyPackages(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("far from expiry: %d %v", n, err)
	}
	n, err := s.Store.NotifyExpiringKeyPackages(ctx, 100*365*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("notices %d %v", n, err)
	}
	if n, _ := s.Store.NotifyExpiringKeyPackages(ctx, 100*365*24*time.Hour); n != 0 {
		t.Fatalf("announced twice: %d", n)
	}
	evs := feed(t, s, alice)
	if got := noticeTypes(evs); !slices.Equal(got, []string{"key_packages_expiring"}) {
		t.Fatalf("notices %v", got)
	}
	var kn models.KeyPackagesExpiringNotice
	_ = json.Unmarshal(evs[0].Payload, &kn)
	if kn.CipherSuite != 1 || kn.Normal != 3 || !kn.LastResort || kn.DeviceID != alice.DeviceID {
		t.Fatalf("notice %+v", kn)
	}
}
