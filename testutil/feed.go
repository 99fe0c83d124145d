package testutil

import (
	"context"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// Feed writes groups, memberships and events straight into the store and
// publishes each committed event exactly as the delivery service does: from
// tx.AfterCommit, with the devices whose feeds it joins (members at its
// seq, including a device removed by it). Tests of the real-time layer use
// it where the delivery endpoints are not the subject.
type Feed struct {
	St *store.Store
}

// CreateGroup creates a group at epoch 0 whose members join now.
func (f Feed) CreateGroup(ctx context.Context, groupID []byte, members ...string) error {
	return f.St.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		if _, err := tx.NewRaw(`INSERT INTO groups (id, epoch, created_at) VALUES (?, 0, ?)`, groupID, models.Millis(tx.Now())).Exec(ctx); err != nil {
			return fmt.Errorf("insert group: %w", err)
		}
		for _, d := range members {
			if err := join(ctx, tx, groupID, d); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddMember makes a device a member from the current end of the sequence.
func (f Feed) AddMember(ctx context.Context, groupID []byte, deviceID string) error {
	return f.St.Write(ctx, func(ctx context.Context, tx *store.Tx) error { return join(ctx, tx, groupID, deviceID) })
}

func join(ctx context.Context, tx *store.Tx, groupID []byte, deviceID string) error {
	last, err := tx.LastSeq(ctx)
	if err != nil {
		return err
	}
	_, err = tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq) VALUES (?, ?, ?)`, groupID, deviceID, last).Exec(ctx)
	if err != nil {
		return fmt.Errorf("insert member: %w", err)
	}
	return nil
}

// Send stores a group event from sender and publishes it to the members.
func (f Feed) Send(ctx context.Context, groupID []byte, sender string, kind models.EventKind, payload []byte) (*models.Event, error) {
	return f.insert(ctx, groupID, sender, "", kind, payload, "")
}

// SendToDevice stores an event addressed to one device and publishes it.
func (f Feed) SendToDevice(ctx context.Context, groupID []byte, recipient string, kind models.EventKind, payload []byte) (*models.Event, error) {
	return f.insert(ctx, groupID, "", recipient, kind, payload, "")
}

// Remove stores a commit from sender that removes device: the removed
// device receives that commit and nothing after.
func (f Feed) Remove(ctx context.Context, groupID []byte, sender, device string) (*models.Event, error) {
	return f.insert(ctx, groupID, sender, "", models.KindCommit, []byte("remove "+device), device)
}

func (f Feed) insert(ctx context.Context, groupID []byte, sender, recipient string, kind models.EventKind, payload []byte, removes string) (*models.Event, error) {
	e := &models.Event{Kind: kind, GroupID: groupID, SenderDeviceID: sender, RecipientDeviceID: recipient, Payload: payload}
	err := f.St.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		if groupID != nil {
			var epoch uint64
			if err := tx.NewRaw(`SELECT epoch FROM groups WHERE id = ?`, groupID).Scan(ctx, &epoch); err != nil {
				return fmt.Errorf("read epoch: %w", err)
			}
			e.Epoch = &epoch
		}
		var devices []string
		if recipient != "" {
			devices = []string{recipient}
		} else if err := tx.NewRaw(`SELECT device_id FROM group_members WHERE group_id = ? AND left_seq IS NULL`, groupID).Scan(ctx, &devices); err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		if err := store.AppendEvent(ctx, tx, e, devices); err != nil {
			return err
		}
		if removes != "" {
			if _, err := tx.NewRaw(`UPDATE group_members SET left_seq = ? WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`, e.Seq, groupID, removes).Exec(ctx); err != nil {
				return fmt.Errorf("remove member: %w", err)
			}
		}
		if kind == models.KindCommit {
			if _, err := tx.NewRaw(`UPDATE groups SET epoch = epoch + 1 WHERE id = ?`, groupID).Exec(ctx); err != nil {
				return fmt.Errorf("advance epoch: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}
