package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// Notice reasons in remove_device notices.
const (
	ReasonDeviceRevoked = "device_revoked"
	ReasonUserDisabled  = "user_disabled"
)

// RecoverRevokedDevice is the delivery side of compromise recovery, run
// inside the use case that revokes a device (by its user or an admin; not a
// mere logout) or disables its user. It
//
//   - stops routing to the device at once: each of its memberships ends
//     just before the notice below (it receives nothing more from any group);
//   - posts a server notice (kind "notice", JSON
//     {"type":"remove_device","device_id":…,"user_id":…,"reason":…}) to each
//     of those groups, asking the remaining members to commit an MLS Remove
//     of the device: the server cannot change the group's keys itself;
//   - deletes the device's key packages and the claims on them, so that no
//     Welcome can add it back.
//
// The notices are published once the use case commits. Calling it again is
// harmless (the device has no memberships left).
func RecoverRevokedDevice(ctx context.Context, tx *Tx, deviceID string) error {
	return recoverDevice(ctx, tx, deviceID, ReasonDeviceRevoked)
}

func recoverDevice(ctx context.Context, tx *Tx, deviceID, reason string) error {
	var userID string
	err := tx.NewRaw(`SELECT user_id FROM devices WHERE id = ?`, deviceID).Scan(ctx, &userID)
	if errors.Is(err, sql.ErrNoRows) {
		return models.Errorf(models.ENOTFOUND, "device_not_found", "no such device")
	}
	if err != nil {
		return fmt.Errorf("read device: %w", err)
	}
	// A revoked device or disabled user gets no more pushes.
	if _, err := deletePushSubscription(ctx, tx, deviceID); err != nil {
		return err
	}
	var groups []struct {
		ID    []byte `bun:"group_id"`
		Epoch int64  `bun:"epoch"`
	}
	err = tx.NewRaw(`SELECT m.group_id, g.epoch FROM group_members m JOIN groups g ON g.id = m.group_id
WHERE m.device_id = ? AND m.left_seq IS NULL ORDER BY m.id`, deviceID).Scan(ctx, &groups)
	if err != nil {
		return fmt.Errorf("list device groups: %w", err)
	}
	payload, err := json.Marshal(models.RemoveDeviceNotice{Type: models.NoticeRemoveDevice, DeviceID: deviceID, UserID: userID, Reason: reason})
	if err != nil {
		return fmt.Errorf("encode notice: %w", err)
	}
	for _, g := range groups {
		epoch := uint64(g.Epoch)
		notice := &models.Event{Kind: models.KindNotice, GroupID: g.ID, Epoch: &epoch, Payload: payload}
		if err := insertEvent(ctx, tx, notice); err != nil {
			return err
		}
		// Everything committed before the notice stays visible to the
		// device's interval; the notice and everything after are not.
		if _, err := tx.NewRaw(`UPDATE group_members SET left_seq = ? WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
			notice.Seq-1, g.ID, deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("end membership: %w", err)
		}
		if _, err := tx.NewRaw(`DELETE FROM pending_removals WHERE group_id = ? AND device_id = ?`, g.ID, deviceID).Exec(ctx); err != nil {
			return fmt.Errorf("clear pending removal: %w", err)
		}
		if deleted, err := deleteGroupIfEmpty(ctx, tx, g.ID); err != nil || deleted {
			if err != nil {
				return err
			}
			continue
		}
		members, err := activeMembers(ctx, tx, g.ID)
		if err != nil {
			return err
		}
		publish(tx, notice, members)
	}
	if _, err := tx.NewRaw(`DELETE FROM key_package_claims WHERE device_id = ?`, deviceID).Exec(ctx); err != nil {
		return fmt.Errorf("delete claims of revoked device: %w", err)
	}
	if _, err := tx.NewRaw(`DELETE FROM key_packages WHERE device_id = ?`, deviceID).Exec(ctx); err != nil {
		return fmt.Errorf("delete key packages of revoked device: %w", err)
	}
	return nil
}

// RecoverDisabledUser runs RecoverRevokedDevice for every device of a user
// that is being disabled, inside the same use case.
func RecoverDisabledUser(ctx context.Context, tx *Tx, userID string) error {
	var devices []string
	if err := tx.NewRaw(`SELECT id FROM devices WHERE user_id = ? ORDER BY id`, userID).Scan(ctx, &devices); err != nil {
		return fmt.Errorf("list user devices: %w", err)
	}
	for _, d := range devices {
		if err := recoverDevice(ctx, tx, d, ReasonUserDisabled); err != nil {
			return err
		}
	}
	return nil
}
