package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// fillGroup creates a group of acc's with what a member can make it store:
// a GroupInfo, a message, a second device of acc's added by a Welcome
// (unless second is nil) and an attachment.
func fillGroup(t *testing.T, s *testutil.Server, acc testutil.Account, second *testutil.Account, gid []byte) {
	t.Helper()
	r := s.Do(t, "POST", "/v1/groups", acc.Token, map[string]any{"group_id": encodeID(gid), "group_info": mlstest.GroupInfo(gid, 0)})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, r.Body)
	}
	mustSend(t, s, acc, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 500))
	if second != nil {
		ref := mlstest.Ref()
		recordClaim(t, s, acc, *second, ref)
		mustCommit(t, s, acc, gid, map[string]any{"commit": mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 100),
			"welcome": mlstest.Welcome(ref), "group_info": mlstest.GroupInfo(gid, 1)})
	}
	if r := s.Do(t, "POST", "/v1/attachments", acc.Token, map[string]any{"group_id": encodeID(gid), "size": 1000}); r.StatusCode != http.StatusCreated {
		t.Fatalf("attachment: %d %s", r.StatusCode, r.Body)
	}
}

// rowsOf counts the rows that belong to the groups gids, in every table
// that holds a group's data.
func rowsOf(t *testing.T, s *testutil.Server, gids ...[]byte) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, q := range []struct{ table, col string }{
		{"groups", "id"}, {"group_members", "group_id"}, {"events", "group_id"}, {"welcomes", "group_id"},
		{"attachments", "group_id"}, {"pending_removals", "group_id"},
	} {
		for _, gid := range gids {
			var n int
			if err := s.Store.ReadDB().NewRaw(fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s = ?`, q.table, q.col), gid).Scan(context.Background(), &n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				out[q.table] += n
			}
		}
	}
	return out
}

// TestGroupsWithoutMembersAreDeleted reproduces issue #19, finding 2's
// "groups are never deleted (… still there after the user was deleted)":
// on every path that can take a group's last member away (admin deletion
// of the account, the user's own deletion, revoking the last member
// device, disabling the user, an admin removing the user from their
// groups, leaving) the group goes with its messages, stored Welcomes,
// GroupInfo and attachment rows; a group another user is still in stays.
func TestGroupsWithoutMembersAreDeleted(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminKey := s.RegisterAdmin(t, "root")
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gone := func(t *testing.T, what string, gids ...[]byte) {
		t.Helper()
		if left := rowsOf(t, s, gids...); len(left) > 0 {
			t.Fatalf("%s: rows left of groups without members: %v", what, left)
		}
	}
	adminDo := func(method, path string, headers ...string) {
		t.Helper()
		r := s.Do(t, method, path, admin.Token, nil, headers...)
		if r.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, r.StatusCode, r.Body)
		}
	}

	t.Run("admin deletes the account", func(t *testing.T) {
		mallory := s.SeedAccount(t, "mallory", models.RoleMember)
		second := s.SeedDevice(t, mallory, "")
		var gids [][]byte
		for i := range 20 {
			gid := []byte(fmt.Sprintf("mallory-flood-%02d", i))
			fillGroup(t, s, mallory, &second, gid)
			gids = append(gids, gid)
		}
		shared := []byte("mallory-and-bob-01")
		createGroup(t, s, mallory, shared)
		joinGroup(t, s, bob, shared)
		if left := rowsOf(t, s, gids...); left["welcomes"] != 20 || left["attachments"] != 20 {
			t.Fatalf("before the deletion: %v", left)
		}
		adminDo("DELETE", "/v1/admin/users/"+mallory.UserID, "Sovereign-Step-Up", s.StepUp(t, admin.Token, adminKey, "delete_user", mallory.UserID))
		gone(t, "after the admin deleted the account", gids...)
		if left := rowsOf(t, s, shared); left["groups"] != 1 {
			t.Fatalf("the group Bob is still in was deleted: %v", left)
		}
		stored, used := storedBytes(t, s, shared)
		if stored != used {
			t.Fatalf("shared group: bytes_used %d, stored %d", used, stored)
		}
	})

	t.Run("the user deletes their account", func(t *testing.T) {
		carol, pk := s.RegisterMember(t, "carol")
		gid := []byte("carol-solo-group-1")
		fillGroup(t, s, carol, nil, gid)
		grant := s.StepUp(t, carol.Token, pk, "delete_account", "")
		r := s.Do(t, "DELETE", "/v1/me", carol.Token, map[string]any{"confirm_username": "carol"}, "Sovereign-Step-Up", grant)
		if r.StatusCode != http.StatusNoContent {
			t.Fatalf("delete own account: %d %s", r.StatusCode, r.Body)
		}
		gone(t, "after the user deleted their account", gid)
	})

	t.Run("the last member device is revoked", func(t *testing.T) {
		dave := s.SeedAccount(t, "dave", models.RoleMember)
		phone := s.SeedDevice(t, dave, "")
		gid := []byte("dave-phone-group-1")
		fillGroup(t, s, phone, nil, gid)
		if r := s.Do(t, "DELETE", "/v1/me/devices/"+phone.DeviceID, dave.Token, nil); r.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
		}
		gone(t, "after the device was revoked", gid)
	})

	t.Run("an admin disables the user", func(t *testing.T) {
		erin := s.SeedAccount(t, "erin", models.RoleMember)
		second := s.SeedDevice(t, erin, "")
		gid := []byte("erin-solo-group-01")
		fillGroup(t, s, erin, &second, gid)
		adminDo("POST", "/v1/admin/users/"+erin.UserID+"/disable")
		gone(t, "after the user was disabled", gid)
	})

	t.Run("an admin removes the user from their groups", func(t *testing.T) {
		frank := s.SeedAccount(t, "frank", models.RoleMember)
		gid := []byte("frank-solo-group-1")
		fillGroup(t, s, frank, nil, gid)
		adminDo("POST", "/v1/admin/users/"+frank.UserID+"/remove-from-groups")
		gone(t, "after the admin removed the user from their groups", gid)
	})

	t.Run("the last member leaves", func(t *testing.T) {
		grace := s.SeedAccount(t, "grace", models.RoleMember)
		gid := []byte("grace-solo-group-1")
		r := s.Do(t, "POST", "/v1/groups", grace.Token, map[string]any{"group_id": encodeID(gid)})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d %s", r.StatusCode, r.Body)
		}
		mustSend(t, s, grace, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 500))
		if r := s.Do(t, "POST", "/v1/attachments", grace.Token, map[string]any{"group_id": encodeID(gid), "size": 1000}); r.StatusCode != http.StatusCreated {
			t.Fatalf("attachment: %d %s", r.StatusCode, r.Body)
		}
		if r := s.Do(t, "POST", gpath(gid, "/leave"), grace.Token, map[string]any{"proposal": mlstest.RemoveProposal(gid, 0, 0, 0)}); r.StatusCode != http.StatusCreated {
			t.Fatalf("leave: %d %s", r.StatusCode, r.Body)
		}
		gone(t, "after the last member left", gid)
	})
}
