package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/models"
)

// EpochWindow is how many epochs behind the current one an application or
// proposal message may be (current-2 … current): members that have not yet
// processed the latest commits can still be heard.
const EpochWindow = 2

// SendInput is one application or proposal message from a device.
type SendInput struct {
	DeviceID string
	GroupID  []byte
	// Message is the whole MLSMessage (PrivateMessage, or PublicMessage for
	// proposals), stored and delivered as is.
	Message []byte
	// IdempotencyKey is optional; see Receipt replay.
	IdempotencyKey string
}

// epochError is the 409 that tells a sender the group's current epoch.
func epochError(reason, format string, current uint64, args ...any) error {
	e := models.Errorf(models.ECONFLICT, reason, format, args...)
	e.CurrentEpoch = &current
	return e
}

// parseGroupMessage parses a framed group message (Public or
// PrivateMessage) and checks its group id.
func parseGroupMessage(m *mls.Message, b, groupID []byte, what string) error {
	if err := mls.ParseMessageInto(m, b); err != nil {
		return mlsError(what, err)
	}
	if m.WireFormat != mls.WireFormatPrivateMessage && m.WireFormat != mls.WireFormatPublicMessage {
		return models.Errorf(models.EINVALID, "wrong_wire_format", "%s: expected an mls_private_message or mls_public_message, got %v", what, m.WireFormat)
	}
	if !bytes.Equal(m.GroupID, groupID) {
		return models.Errorf(models.EINVALID, "group_id_mismatch", "%s: the message's group_id differs from the group in the URL", what)
	}
	return nil
}

// SendMessage stores an application or proposal message for a group and
// publishes it to the group's member devices. The bytes are parsed before
// the write (never decrypted): wire format, group id, content type and
// epoch. The write checks membership, the epoch window (409 with the current
// epoch outside current-2 … current) and the group's storage quota.
//
// With an idempotency key, a request seen before returns the first result
// (replayed = true) and stores nothing.
func (s *Store) SendMessage(ctx context.Context, in SendInput) (r *models.Receipt, replayed bool, err error) {
	var m mls.Message
	if err := parseGroupMessage(&m, in.Message, in.GroupID, "message"); err != nil {
		return nil, false, err
	}
	var kind models.EventKind
	switch m.ContentType {
	case mls.ContentApplication:
		if m.WireFormat != mls.WireFormatPrivateMessage {
			return nil, false, models.Errorf(models.EINVALID, "public_application_message", "application messages must be PrivateMessages (RFC 9420 §6.2)")
		}
		kind = models.KindApplication
		if s.requirePadding && !m.IsPadded() {
			return nil, false, models.Errorf(models.EINVALID, "unpadded_message",
				"this server requires padded messages (--require-padding): the ciphertext holds %d bytes of content, not one of the padding buckets (%d bytes would be); use an SDK that pads, or pad the PrivateMessageContent to mls.PaddedLength",
				len(m.Ciphertext)-mls.AEADTagBytes, mls.PaddedLength(len(m.Ciphertext)-mls.AEADTagBytes))
		}
	case mls.ContentProposal:
		kind = models.KindProposal
	default:
		return nil, false, models.Errorf(models.EINVALID, "commit_not_allowed", "commits are sent as a commit bundle: POST /v1/groups/{group_id}/commits")
	}
	epoch := m.Epoch

	var hash []byte
	r = new(models.Receipt)
	if in.IdempotencyKey != "" {
		hash = requestHash("message", in.GroupID, in.Message)
		if found, err := s.lookupIdempotent(ctx, in.DeviceID, in.IdempotencyKey, hash, r); err != nil || found {
			return r, found, err
		}
	}

	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth() // events, groups and idempotency_keys only
		if in.IdempotencyKey != "" {
			// A concurrent retry may have been committed since the read above.
			found, err := lookupIdempotentTx(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, r)
			if err != nil || found {
				replayed = found
				return err
			}
		}
		var g struct {
			Epoch          int64
			BytesUsed      int64
			MembersVersion int64
			ChainHead      []byte
			Member         bool
		}
		st, err := tx.stmt(ctx, qGroupForSend)
		if err != nil {
			return err
		}
		err = st.QueryRowContext(ctx, in.DeviceID, in.GroupID).Scan(&g.Epoch, &g.BytesUsed, &g.MembersVersion, &g.ChainHead, &g.Member)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !g.Member {
			return errNotMember()
		}
		if err != nil {
			return fmt.Errorf("read group: %w", err)
		}
		cur := uint64(g.Epoch)
		if epoch > cur || cur-epoch > EpochWindow {
			return epochError("epoch_out_of_window", "the message is for epoch %d; the group accepts epochs %d to %d", cur,
				epoch, cur-min(cur, EpochWindow), cur)
		}
		if g.BytesUsed+int64(len(in.Message)) > s.quota {
			return models.Errorf(models.EQUOTA, "group_quota_exceeded",
				"the group's storage quota (%d bytes) is full; messages are freed as members acknowledge them or as they expire", s.quota)
		}
		tx.knowChainHead(in.GroupID, g.ChainHead)
		ev := &models.Event{Kind: kind, GroupID: in.GroupID, Epoch: &epoch, SenderDeviceID: in.DeviceID, Payload: in.Message}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		members, err := groupMembers(ctx, tx, in.GroupID, g.MembersVersion)
		if err != nil {
			return err
		}
		*r = models.Receipt{ID: ev.ID, Seq: ev.Seq, ServerTime: ev.ServerTime, Kind: kind, Epoch: epoch}
		if in.IdempotencyKey != "" {
			if err := saveIdempotent(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, r); err != nil {
				return err
			}
		}
		publish(tx, ev, members)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return r, replayed, nil
}

// MaxRemovedDevices bounds the removed-device list of one commit bundle.
const MaxRemovedDevices = 1000

// CommitInput is a commit bundle: a commit with the Welcome for the members
// it adds, the GroupInfo of the epoch it creates and the devices it removes.
type CommitInput struct {
	DeviceID string
	GroupID  []byte
	// Commit is an MLSMessage (PublicMessage or PrivateMessage) of content
	// type commit, at the group's current epoch.
	Commit []byte
	// Welcome is optional: an MLSMessage(Welcome) whose KeyPackageRefs must
	// each have been claimed by the committing device.
	Welcome []byte
	// GroupInfo is optional: the MLSMessage(GroupInfo) of the new epoch.
	GroupInfo []byte
	// RemoveDevices are the devices the commit removes.
	RemoveDevices  []string
	IdempotencyKey string
}

// CommitBundle applies a commit bundle in one use case: exactly one commit
// per epoch wins. The commit must be at the group's current epoch and come
// from a member device (409 with the current epoch otherwise). Then the
// epoch advances, the commit is stored and published to every member at its
// sequence number (the removed devices included: it is the last event they
// get), the removed devices' memberships end at that sequence number, and
// each device whose claimed KeyPackageRef the Welcome addresses becomes a
// member from that sequence number and gets the Welcome.
func (s *Store) CommitBundle(ctx context.Context, in CommitInput) (res *models.CommitResult, replayed bool, err error) {
	var m mls.Message
	if err := parseGroupMessage(&m, in.Commit, in.GroupID, "commit"); err != nil {
		return nil, false, err
	}
	if m.ContentType != mls.ContentCommit {
		return nil, false, models.Errorf(models.EINVALID, "not_a_commit", "commit: content type is %v, not commit; send it to POST /v1/groups/{group_id}/messages", m.ContentType)
	}
	if m.WireFormat == mls.WireFormatPublicMessage && m.Sender.Type == mls.SenderNewMemberCommit {
		return s.externalCommit(ctx, in, &m)
	}
	if m.WireFormat == mls.WireFormatPublicMessage && m.Sender.Type != mls.SenderMember {
		return nil, false, models.Errorf(models.EINVALID, "external_commit_unsupported",
			"commit: the sender type is %v; commits come from members or, for external commits, new_member_commit", m.Sender.Type)
	}
	epoch := m.Epoch
	var refs [][]byte
	if in.Welcome != nil {
		w, err := mls.ParseWelcome(in.Welcome)
		if err != nil {
			return nil, false, mlsError("welcome", err)
		}
		refs = w.NewMembers()
		if len(refs) == 0 {
			return nil, false, models.Errorf(models.EINVALID, "empty_welcome", "welcome: it addresses no key package")
		}
		for i, ref := range refs {
			if slices.ContainsFunc(refs[:i], func(r []byte) bool { return bytes.Equal(r, ref) }) {
				e := models.Errorf(models.EINVALID, "duplicate_welcome_ref", "welcome: KeyPackageRef %d appears twice", i)
				e.Index = &i
				return nil, false, e
			}
		}
	}
	if in.GroupInfo != nil {
		if err := parseGroupInfo(in.GroupInfo, in.GroupID, epoch+1); err != nil {
			return nil, false, err
		}
	}
	if len(in.RemoveDevices) > MaxRemovedDevices {
		return nil, false, models.Errorf(models.EINVALID, "too_many_removed", "at most %d devices can be removed by one commit", MaxRemovedDevices)
	}
	for i, d := range in.RemoveDevices {
		if d == in.DeviceID {
			e := models.Errorf(models.EINVALID, "self_remove", "a device cannot commit its own removal; another member must commit it")
			e.Index = &i
			return nil, false, e
		}
		if slices.Contains(in.RemoveDevices[:i], d) {
			e := models.Errorf(models.EINVALID, "duplicate_removed_device", "removed device %d is listed twice", i)
			e.Index = &i
			return nil, false, e
		}
	}

	var hash []byte
	res = new(models.CommitResult)
	if in.IdempotencyKey != "" {
		parts := [][]byte{in.GroupID, in.Commit, in.Welcome, in.GroupInfo}
		for _, d := range in.RemoveDevices {
			parts = append(parts, []byte(d))
		}
		hash = requestHash("commit", parts...)
		if found, err := s.lookupIdempotent(ctx, in.DeviceID, in.IdempotencyKey, hash, res); err != nil || found {
			return res, found, err
		}
	}

	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if in.IdempotencyKey != "" {
			found, err := lookupIdempotentTx(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, res)
			if err != nil || found {
				replayed = found
				return err
			}
		}
		var cur, used, oldInfo int64
		// The epoch check: on engines with several writers the row stays
		// locked until the batch commits.
		err := tx.NewRaw(`SELECT epoch, bytes_used, COALESCE(length(group_info), 0) FROM groups WHERE id = ?`+tx.w.eng.forUpdate(), in.GroupID).Scan(ctx, &cur, &used, &oldInfo)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotMember()
		}
		if err != nil {
			return fmt.Errorf("read group epoch: %w", err)
		}
		members, err := activeMembers(ctx, tx, in.GroupID)
		if err != nil {
			return err
		}
		if !slices.Contains(members, in.DeviceID) {
			return errNotMember()
		}
		if epoch != uint64(cur) {
			return epochError("epoch_mismatch", "the commit is for epoch %d but the group is at epoch %d: fetch and process the commits you missed, then commit again",
				uint64(cur), epoch, cur)
		}
		if err := checkPendingRemovals(ctx, tx, in.GroupID, epoch, in.RemoveDevices); err != nil {
			return err
		}
		// Removed devices: current members end now; former members (e.g.
		// already cut off by a revocation) are accepted as a no-op, and so
		// are devices that no longer exist (deleted with their account,
		// memberships and all, after they left: the members' Remove commit
		// follows); existing devices that never belonged are an error.
		var ending []string
		for i, d := range in.RemoveDevices {
			if slices.Contains(members, d) {
				ending = append(ending, d)
				continue
			}
			var n, exists int
			if err := tx.NewRaw(`SELECT (SELECT COUNT(*) FROM group_members WHERE group_id = ? AND device_id = ?), (SELECT COUNT(*) FROM devices WHERE id = ?)`,
				in.GroupID, d, d).Scan(ctx, &n, &exists); err != nil {
				return fmt.Errorf("check removed device: %w", err)
			}
			if n == 0 && exists > 0 {
				e := models.Errorf(models.EINVALID, "not_a_member_device", "removed device %d (%s) was never a member of this group", i, d)
				e.Index = &i
				return e
			}
		}
		// Added devices: the owners of the key packages the committer
		// claimed, one per Welcome entry.
		added := make([]string, 0, len(refs))
		for i, ref := range refs {
			var owner struct {
				DeviceID string `bun:"device_id"`
				Revoked  *int64 `bun:"revoked_at"`
			}
			err := tx.NewRaw(`SELECT c.device_id, d.revoked_at FROM key_package_claims c JOIN devices d ON d.id = c.device_id
WHERE c.claimer_device_id = ? AND c.ref = ?`, in.DeviceID, ref).Scan(ctx, &owner)
			if errors.Is(err, sql.ErrNoRows) {
				e := models.Errorf(models.EINVALID, "welcome_ref_not_claimed",
					"welcome: KeyPackageRef %d was not claimed by this device; claim the new member's key package first", i)
				e.Index = &i
				return e
			}
			if err != nil {
				return fmt.Errorf("match welcome ref: %w", err)
			}
			var problem string
			switch {
			case owner.Revoked != nil:
				problem = "device_revoked"
			case slices.Contains(added, owner.DeviceID):
				problem = "duplicate_added_device"
			case slices.Contains(members, owner.DeviceID) && !slices.Contains(ending, owner.DeviceID):
				problem = "already_member"
			}
			if problem != "" {
				e := models.Errorf(models.EINVALID, problem, "welcome: KeyPackageRef %d belongs to device %s, which cannot be added (%s)", i, owner.DeviceID, problem)
				e.Index = &i
				return e
			}
			added = append(added, owner.DeviceID)
		}

		// Commits are stored bytes too: a bundle that adds members (its
		// Welcome is stored once, with a pointer per added device) or grows
		// the GroupInfo must fit the group's quota. A commit that adds
		// nobody is always accepted, so members of a full group can still
		// remove a compromised device.
		infoGrowth := int64(len(in.GroupInfo)) - oldInfo
		if len(added) > 0 {
			need := used + int64(len(in.Commit)) + int64(len(in.Welcome)) + max(infoGrowth, 0)
			if need > s.quota {
				return models.Errorf(models.EQUOTA, "group_quota_exceeded",
					"the group's storage quota (%d bytes) cannot hold this commit and its Welcomes; messages are freed as members acknowledge them or as they expire", s.quota)
			}
		}
		commit := &models.Event{Kind: models.KindCommit, GroupID: in.GroupID, Epoch: &epoch, SenderDeviceID: in.DeviceID, Payload: in.Commit}
		if err := insertEvent(ctx, tx, commit); err != nil {
			return err
		}
		newEpoch := epoch + 1
		if _, err := tx.NewRaw(`UPDATE groups SET epoch = ?, group_info = ?, bytes_used = MAX(0, bytes_used + ?) WHERE id = ?`,
			int64(newEpoch), nullBytes(in.GroupInfo), infoGrowth, in.GroupID).Exec(ctx); err != nil {
			return fmt.Errorf("advance epoch: %w", err)
		}
		for _, d := range ending {
			if _, err := tx.NewRaw(`UPDATE group_members SET left_seq = ? WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
				commit.Seq, in.GroupID, d).Exec(ctx); err != nil {
				return fmt.Errorf("end membership: %w", err)
			}
		}
		*res = models.CommitResult{
			Commit:         models.Receipt{ID: commit.ID, Seq: commit.Seq, ServerTime: commit.ServerTime, Kind: models.KindCommit, Epoch: epoch},
			Epoch:          newEpoch,
			Welcomes:       []models.WelcomeReceipt{},
			AddedDevices:   added,
			RemovedDevices: append([]string{}, in.RemoveDevices...),
		}
		if _, err := tx.NewRaw(`DELETE FROM pending_removals WHERE group_id = ?`, in.GroupID).Exec(ctx); err != nil {
			return fmt.Errorf("clear pending removals: %w", err)
		}
		publish(tx, commit, members)
		var welcomeID int64
		if len(added) > 0 {
			if welcomeID, err = insertWelcome(ctx, tx, in.GroupID, in.Welcome); err != nil {
				return err
			}
		}
		for _, d := range added {
			if _, err := tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq) VALUES (?, ?, ?)`,
				in.GroupID, d, commit.Seq).Exec(ctx); err != nil {
				return fmt.Errorf("add member: %w", err)
			}
			welcome := &models.Event{Kind: models.KindWelcome, GroupID: in.GroupID, Epoch: &newEpoch, SenderDeviceID: in.DeviceID,
				RecipientDeviceID: d, Payload: in.Welcome}
			if err := insertWelcomePointer(ctx, tx, welcome, welcomeID); err != nil {
				return err
			}
			res.Welcomes = append(res.Welcomes, models.WelcomeReceipt{DeviceID: d, ID: welcome.ID, Seq: welcome.Seq})
			publish(tx, welcome, []string{d})
		}
		if in.IdempotencyKey != "" {
			if err := saveIdempotent(ctx, tx, in.DeviceID, in.IdempotencyKey, hash, res); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return res, replayed, nil
}
