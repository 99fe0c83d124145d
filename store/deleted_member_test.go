package store

import (
	"context"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
)

// TestRemoveCommitAfterAccountDeletion: when an account is deleted, its
// devices leave their groups (the members get remove_device notices) and
// then their rows go. The members' Remove commit that follows lists those
// devices: it must be accepted (as after a revocation), or the deleted
// user's leaves could never leave the groups' MLS trees. An existing
// device that never belonged is still refused.
func TestRemoveCommitAfterAccountDeletion(t *testing.T) {
	_, s, alice, bob, carol, gid, _ := groupOfAliceAndBob(t, "g-deleted")
	ctx := context.Background()
	var bobUser string
	if err := s.rdb.NewRaw(`SELECT user_id FROM devices WHERE id = ?`, bob).Scan(ctx, &bobUser); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, models.Actor{}, bobUser, nil); err != nil {
		t.Fatal(err)
	}
	var left int
	_ = s.rdb.NewRaw(`SELECT COUNT(*) FROM devices WHERE id = ?`, bob).Scan(ctx, &left)
	if left != 0 {
		t.Fatalf("the deleted user's device is still there")
	}
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 100), RemoveDevices: []string{bob}}); err != nil {
		t.Fatalf("remove commit after the account's deletion: %v", err)
	}
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 2, mls.ContentCommit, nil, 100), RemoveDevices: []string{carol}}); !models.IsCode(err, models.EINVALID) {
		t.Fatalf("remove of a device that never belonged: %v", err)
	}
}
