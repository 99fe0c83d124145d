package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/models"
)

// ownDeviceMemberSQL is true when a device of user ? that is not revoked is
// a member of group ? now: the condition for a user's (new) device to see
// the group's GroupInfo and join it by external commit.
const ownDeviceMemberSQL = `EXISTS (SELECT 1 FROM group_members m JOIN devices d ON d.id = m.device_id
  WHERE m.group_id = ? AND m.left_seq IS NULL AND d.user_id = ? AND d.revoked_at IS NULL)`

// GroupInfoForJoin returns the stored GroupInfo of a group and its epoch to
// a device of a user who has an active device in the group (the device
// itself, for a rejoin after 410, or another one, for a new device). Any
// other caller gets the not-member error whether or not the group exists.
// A group with no GroupInfo stored for its current epoch is 409
// group_info_unavailable.
func (s *Store) GroupInfoForJoin(ctx context.Context, userID string, groupID []byte) ([]byte, uint64, error) {
	var row struct {
		Epoch     int64  `bun:"epoch"`
		GroupInfo []byte `bun:"group_info"`
		Allowed   bool   `bun:"allowed"`
	}
	err := s.rdb.NewRaw(`SELECT g.epoch, g.group_info, `+ownDeviceMemberSQL+` AS allowed FROM groups g WHERE g.id = ?`,
		groupID, userID, groupID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !row.Allowed {
		return nil, 0, errNotMember()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read group info: %w", err)
	}
	if row.GroupInfo == nil {
		return nil, uint64(row.Epoch), epochError("group_info_unavailable",
			"no GroupInfo is stored for epoch %d (the last commit brought none); a member's next commit will", uint64(row.Epoch), uint64(row.Epoch))
	}
	return row.GroupInfo, uint64(row.Epoch), nil
}

// deviceOfIdentity returns the device id a BasicCredential identity names,
// or "".
func deviceOfIdentity(c mls.Credential) string {
	if c.Type != mls.CredentialBasic {
		return ""
	}
	id, ok := strings.CutPrefix(string(c.Identity), models.KeyPackageIdentityPrefix)
	if !ok {
		return ""
	}
	return id
}

// treeDevices maps the leaf indexes of a stored GroupInfo's ratchet tree to
// the device ids their credentials name. ok is false when the GroupInfo
// carries no ratchet tree.
func treeDevices(groupInfo []byte) (map[uint32]string, bool, error) {
	if groupInfo == nil {
		return nil, false, nil
	}
	gi, err := mls.ParseGroupInfo(groupInfo)
	if err != nil {
		return nil, false, fmt.Errorf("stored group info: %w", err)
	}
	leaves, ok, err := gi.RatchetTree()
	if err != nil || !ok {
		return nil, false, err
	}
	out := make(map[uint32]string, len(leaves))
	for _, l := range leaves {
		out[l.Index] = deviceOfIdentity(l.Leaf.Credential)
	}
	return out, true, nil
}

// externalCommit applies an external commit (RFC 9420 §12.4.3.2): a device
// of a user who has another active device in the group (a new device) or
// the device itself (a rejoin after its feed expired) joins the group's
// current epoch without a Welcome. The rules are those of every commit
// (current epoch, one winner per epoch, 409 with current_epoch) plus, from
// the clear PublicMessage: it is an external commit, the joiner's
// credential is the calling device's, and any Remove in it removes a leaf
// of the caller's own user (its old leaf) — checked against the ratchet
// tree of the stored GroupInfo.
func (s *Store) externalCommit(ctx context.Context, in CommitInput, m *mls.Message) (*models.CommitResult, bool, error) {
	ec, err := m.ExternalCommit()
	if err != nil {
		e := models.Errorf(models.EINVALID, "invalid_external_commit", "commit: %v", err)
		e.Err = err
		return nil, false, e
	}
	if deviceOfIdentity(ec.Joiner.Credential) != in.DeviceID {
		return nil, false, models.Errorf(models.EINVALID, "external_commit_identity",
			"commit: the joiner's credential must be a BasicCredential with identity %q", models.KeyPackageIdentity(in.DeviceID))
	}
	if in.Welcome != nil {
		return nil, false, models.Errorf(models.EINVALID, "external_commit_welcome", "an external commit adds only its sender: it has no Welcome")
	}
	if in.GroupInfo != nil {
		if err := parseGroupInfo(in.GroupInfo, in.GroupID, ec.Epoch+1); err != nil {
			return nil, false, err
		}
	}
	var hash []byte
	res := new(models.CommitResult)
	if in.IdempotencyKey != "" {
		parts := [][]byte{in.GroupID, in.Commit, in.GroupInfo}
		for _, d := range in.RemoveDevices {
			parts = append(parts, []byte(d))
		}
		hash = requestHash("commit", parts...)
		if found, err := s.lookupIdempotent(ctx, in.DeviceID, in.IdempotencyKey, hash, res); err != nil || found {
			return res, found, err
		}
	}
	replayed := false
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if in.IdempotencyKey != "" {
			found, err := lookupIdempotentTx(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, res)
			if err != nil || found {
				replayed = found
				return err
			}
		}
		var userID string
		if err := tx.NewRaw(`SELECT user_id FROM devices WHERE id = ? AND revoked_at IS NULL`, in.DeviceID).Scan(ctx, &userID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errNotMember()
			}
			return fmt.Errorf("read joiner: %w", err)
		}
		var g struct {
			Epoch     int64  `bun:"epoch"`
			GroupInfo []byte `bun:"group_info"`
			Allowed   bool   `bun:"allowed"`
		}
		err := tx.NewRaw(`SELECT g.epoch, g.group_info, `+ownDeviceMemberSQL+` AS allowed FROM groups g WHERE g.id = ?`,
			in.GroupID, userID, in.GroupID).Scan(ctx, &g)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !g.Allowed {
			return errNotMember()
		}
		if err != nil {
			return fmt.Errorf("read group: %w", err)
		}
		if ec.Epoch != uint64(g.Epoch) {
			return epochError("epoch_mismatch", "the commit is for epoch %d but the group is at epoch %d: fetch the GroupInfo again and rebuild the external commit",
				uint64(g.Epoch), ec.Epoch, g.Epoch)
		}
		var pending int
		if err := tx.NewRaw(`SELECT count(*) FROM pending_removals WHERE group_id = ?`, in.GroupID).Scan(ctx, &pending); err != nil {
			return fmt.Errorf("read pending removals: %w", err)
		}
		if pending > 0 {
			// An external commit cannot include proposals by reference,
			// so it would drop a member's pending self-Remove.
			return epochError("pending_removal", "a member's departure waits to be committed; retry once the next commit moved the group past epoch %d",
				uint64(g.Epoch), g.Epoch)
		}
		members, err := activeMembers(ctx, tx, in.GroupID)
		if err != nil {
			return err
		}
		// Removes: only leaves of the caller's own user (its old leaf).
		var ending []string
		if len(ec.Removed) > 0 {
			tree, ok, err := treeDevices(g.GroupInfo)
			if err != nil {
				return err
			}
			if !ok {
				return models.Errorf(models.EINVALID, "external_remove_unverifiable",
					"the stored GroupInfo has no ratchet tree, so a Remove in an external commit cannot be checked")
			}
			for _, leaf := range ec.Removed {
				d := tree[leaf]
				var owner string
				if d != "" {
					if err := tx.NewRaw(`SELECT user_id FROM devices WHERE id = ?`, d).Scan(ctx, &owner); err != nil && !errors.Is(err, sql.ErrNoRows) {
						return fmt.Errorf("read removed device: %w", err)
					}
				}
				if owner != userID {
					return models.Errorf(models.EINVALID, "external_remove_not_own",
						"an external commit may remove only a leaf of your own user (leaf %d is not)", leaf)
				}
				if d != in.DeviceID && slices.Contains(members, d) {
					ending = append(ending, d)
				}
			}
		}
		for _, d := range in.RemoveDevices {
			if !slices.Contains(ending, d) && d != in.DeviceID {
				return models.Errorf(models.EINVALID, "removed_devices_mismatch", "removed device %s is not removed by the external commit", d)
			}
		}
		epoch := ec.Epoch
		commit := &models.Event{Kind: models.KindCommit, GroupID: in.GroupID, Epoch: &epoch, SenderDeviceID: in.DeviceID, Payload: in.Commit}
		if err := insertEvent(ctx, tx, commit); err != nil {
			return err
		}
		newEpoch := epoch + 1
		// The new GroupInfo replaces the old one in the group's bytes_used.
		if _, err := tx.NewRaw(`UPDATE groups SET epoch = ?, group_info = ?, bytes_used = MAX(0, bytes_used + ?) WHERE id = ?`,
			int64(newEpoch), nullBytes(in.GroupInfo), int64(len(in.GroupInfo))-int64(len(g.GroupInfo)), in.GroupID).Exec(ctx); err != nil {
			return fmt.Errorf("advance epoch: %w", err)
		}
		for _, d := range ending {
			if _, err := tx.NewRaw(`UPDATE group_members SET left_seq = ? WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
				commit.Seq, in.GroupID, d).Exec(ctx); err != nil {
				return fmt.Errorf("end membership: %w", err)
			}
		}
		added := []string{}
		if !slices.Contains(members, in.DeviceID) {
			if _, err := tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq) VALUES (?, ?, ?)`,
				in.GroupID, in.DeviceID, commit.Seq).Exec(ctx); err != nil {
				return fmt.Errorf("add joiner: %w", err)
			}
			added = append(added, in.DeviceID)
		}
		*res = models.CommitResult{
			Commit:         models.Receipt{ID: commit.ID, Seq: commit.Seq, ServerTime: commit.ServerTime, Kind: models.KindCommit, Epoch: epoch},
			Epoch:          newEpoch,
			Welcomes:       []models.WelcomeReceipt{},
			AddedDevices:   added,
			RemovedDevices: append([]string{}, ending...),
		}
		publish(tx, commit, members)
		if in.IdempotencyKey != "" {
			return saveIdempotent(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, res)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}

// checkPendingRemovals refuses a commit at epoch that does not list every
// device whose self-Remove proposal waits at that epoch.
func checkPendingRemovals(ctx context.Context, tx *Tx, groupID []byte, epoch uint64, removed []string) error {
	var pending []string
	if err := tx.NewRaw(`SELECT device_id FROM pending_removals WHERE group_id = ? AND epoch = ? ORDER BY proposal_seq`,
		groupID, int64(epoch)).Scan(ctx, &pending); err != nil {
		return fmt.Errorf("read pending removals: %w", err)
	}
	for _, d := range pending {
		if !slices.Contains(removed, d) {
			return models.Errorf(models.EINVALID, "pending_removal_missing",
				"device %s left the group by a Remove proposal: this commit must include that proposal (by reference) and list the device in removed_devices", d)
		}
	}
	return nil
}

// LeaveResult is the outcome of a device leaving a group.
type LeaveResult struct {
	Proposal models.Receipt
	// GroupDeleted is true when the device was the last member: the group
	// and its events are gone.
	GroupDeleted bool
}

// LeaveGroup lets a device leave a group on its own. RFC 9420 forbids a
// member to commit its own removal, so the device sends a Remove proposal
// for its own leaf (a PublicMessage, so the server can check that it is one:
// sender member at leaf i, one Remove of leaf i, the current epoch). The
// server stores and publishes it, ends the device's membership at its seq
// (it receives nothing after) and keeps it by reference: the next commit at
// that epoch must list the device in removed_devices (clients include the
// proposal by reference). When no member is left, the group is deleted with
// its events.
func (s *Store) LeaveGroup(ctx context.Context, deviceID string, groupID, proposal []byte) (*LeaveResult, error) {
	var m mls.Message
	if err := parseGroupMessage(&m, proposal, groupID, "proposal"); err != nil {
		return nil, err
	}
	if m.WireFormat != mls.WireFormatPublicMessage || m.ContentType != mls.ContentProposal || m.Sender.Type != mls.SenderMember ||
		len(m.Removed) != 1 || m.Removed[0] != m.Sender.Index {
		return nil, models.Errorf(models.EINVALID, "not_a_self_remove",
			"proposal: leaving needs a PublicMessage proposal from a member that removes the sender's own leaf")
	}
	epoch := m.Epoch
	out := &LeaveResult{}
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var g struct {
			Epoch     int64  `bun:"epoch"`
			GroupInfo []byte `bun:"group_info"`
		}
		err := tx.NewRaw(`SELECT g.epoch, g.group_info FROM groups g JOIN group_members m ON m.group_id = g.id
WHERE g.id = ? AND m.device_id = ? AND m.left_seq IS NULL`, groupID, deviceID).Scan(ctx, &g)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotMember()
		}
		if err != nil {
			return fmt.Errorf("read group: %w", err)
		}
		if epoch != uint64(g.Epoch) {
			return epochError("epoch_mismatch", "the proposal is for epoch %d but the group is at epoch %d: process the commits you missed and propose again",
				uint64(g.Epoch), epoch, g.Epoch)
		}
		if tree, ok, err := treeDevices(g.GroupInfo); err == nil && ok && tree[m.Sender.Index] != deviceID {
			return models.Errorf(models.EINVALID, "self_remove_wrong_leaf", "proposal: leaf %d is not this device's leaf", m.Sender.Index)
		}
		members, err := activeMembers(ctx, tx, groupID)
		if err != nil {
			return err
		}
		ev := &models.Event{Kind: models.KindProposal, GroupID: groupID, Epoch: &epoch, SenderDeviceID: deviceID, Payload: proposal}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		if _, err := tx.NewRaw(`UPDATE group_members SET left_seq = ? WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
			ev.Seq, groupID, deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("end membership: %w", err)
		}
		out.Proposal = models.Receipt{ID: ev.ID, Seq: ev.Seq, ServerTime: ev.ServerTime, Kind: models.KindProposal, Epoch: epoch}
		deleted, err := deleteGroupIfEmpty(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if deleted {
			out.GroupDeleted = true
			return nil
		}
		if _, err := tx.NewRaw(`INSERT INTO pending_removals (group_id, device_id, epoch, proposal_seq, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (group_id, device_id) DO UPDATE SET epoch = excluded.epoch, proposal_seq = excluded.proposal_seq`,
			groupID, deviceID, int64(epoch), ev.Seq, models.Millis(tx.Now())).Exec(ctx); err != nil {
			return fmt.Errorf("keep pending removal: %w", err)
		}
		publish(tx, ev, members)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteGroupIfEmpty deletes a group that has no member left, with its
// events, memberships and pending removals (ON DELETE CASCADE), and
// reports whether it did.
func deleteGroupIfEmpty(ctx context.Context, tx *Tx, groupID []byte) (bool, error) {
	var n int
	if err := tx.NewRaw(`SELECT count(*) FROM group_members WHERE group_id = ? AND left_seq IS NULL`, groupID).Scan(ctx, &n); err != nil {
		return false, fmt.Errorf("count members: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.NewRaw(`DELETE FROM groups WHERE id = ?`, groupID).Exec(ctx); err != nil {
		return false, fmt.Errorf("delete group: %w", err)
	}
	// A group created again with this id starts its members_version anew:
	// forget the cached list so it cannot be mistaken for the new one's.
	delete(tx.w.members, string(groupID))
	return true, nil
}

// notifyNewDevice posts a new_device notice to every other active device
// of the user, inside the sign-in use case that created deviceID, with the
// sign-in's coarse location when the server looked one up (loc may be nil).
func notifyNewDevice(ctx context.Context, tx *Tx, userID, deviceID, deviceName string, loc *models.Location) error {
	var others []string
	if err := tx.NewRaw(`SELECT id FROM devices WHERE user_id = ? AND id <> ? AND revoked_at IS NULL ORDER BY created_at, id`,
		userID, deviceID).Scan(ctx, &others); err != nil {
		return fmt.Errorf("list other devices: %w", err)
	}
	n := models.NewDeviceNotice{Type: models.NoticeNewDevice, DeviceID: deviceID, DeviceName: deviceName, UserID: userID,
		CreatedAt: tx.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), Location: loc}
	for _, d := range others {
		if _, err := AppendDeviceNotice(ctx, tx, d, n); err != nil {
			return err
		}
	}
	return nil
}

// DeleteOwnAccount deletes the signed-in user's account as an admin
// deletion does (DeleteUser): every device leaves its groups first (the
// remaining members get remove_device notices with reason user_deleted;
// groups left without members are deleted), sessions end and the user's
// rows go. The last enabled admin cannot delete their own account.
func (s *Store) DeleteOwnAccount(ctx context.Context, actor models.Actor) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		return s.deleteAccount(ctx, tx, models.Actor{}, actor, actor.UserID, models.AuditAccountDeleted, nil)
	})
}

// JoinableGroups lists the groups where another active device of the
// device's user is a member and the device itself is not: what a new
// device can join by external commit.
func (s *Store) JoinableGroups(ctx context.Context, userID, deviceID string) ([]*models.Group, error) {
	var rows []struct {
		ID        []byte `bun:"id"`
		Epoch     int64  `bun:"epoch"`
		CreatedAt int64  `bun:"created_at"`
	}
	err := s.rdb.NewRaw(`SELECT g.id, g.epoch, g.created_at FROM groups g
WHERE EXISTS (SELECT 1 FROM group_members m JOIN devices d ON d.id = m.device_id
              WHERE m.group_id = g.id AND m.left_seq IS NULL AND d.user_id = ? AND d.id <> ? AND d.revoked_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.device_id = ? AND m.left_seq IS NULL)
ORDER BY g.created_at, g.id`, userID, deviceID, deviceID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("list joinable groups: %w", err)
	}
	out := make([]*models.Group, len(rows))
	for i, r := range rows {
		out[i] = &models.Group{ID: r.ID, Epoch: uint64(r.Epoch), CreatedAt: models.FromMillis(r.CreatedAt)}
	}
	return out, nil
}
