package store

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/sovereign-im/sovereign/models"
)

// userCaps are the per-user counts a member cannot exceed (issue #19,
// finding 2). Zero means no cap. They are run-time settings, so they live
// in atomics the server updates when an admin changes them.
type userCaps struct {
	groups  atomic.Int64
	devices atomic.Int64
}

// SetUserCaps sets the caps in force: the groups a user's devices may be
// members of for the user to create another (groups), and the devices (not
// revoked) a user may have (devices). Zero lifts a cap.
func (s *Store) SetUserCaps(groups, devices int) {
	s.caps.groups.Store(int64(groups))
	s.caps.devices.Store(int64(devices))
}

// checkGroupCap refuses a new group to a user whose devices are already
// members of the cap's number of groups.
func (s *Store) checkGroupCap(ctx context.Context, tx *Tx, deviceID string) error {
	limit := s.caps.groups.Load()
	if limit <= 0 {
		return nil
	}
	var n int64
	err := tx.NewRaw(`SELECT count(DISTINCT m.group_id) FROM group_members m
WHERE m.left_seq IS NULL AND m.device_id IN (SELECT o.id FROM devices o JOIN devices d ON d.user_id = o.user_id WHERE d.id = ?)`,
		deviceID).Scan(ctx, &n)
	if err != nil {
		return fmt.Errorf("count user's groups: %w", err)
	}
	if n >= limit {
		return models.Errorf(models.EQUOTA, "group_limit_reached",
			"your devices are members of %d groups, the most this server allows for creating another: leave a group you no longer need", n)
	}
	return nil
}

// checkDeviceCap refuses another device to a user who already has the
// cap's number of devices that are not revoked.
func (s *Store) checkDeviceCap(ctx context.Context, tx *Tx, userID string) error {
	limit := s.caps.devices.Load()
	if limit <= 0 {
		return nil
	}
	var n int64
	if err := tx.NewRaw(`SELECT count(*) FROM devices WHERE user_id = ? AND revoked_at IS NULL`, userID).Scan(ctx, &n); err != nil {
		return fmt.Errorf("count user's devices: %w", err)
	}
	if n >= limit {
		return models.Errorf(models.EQUOTA, "device_limit_reached",
			"this account already has %d devices, the most this server allows: on a device you are signed in on, revoke one you no longer use (Settings → Devices), then sign in here again", n)
	}
	return nil
}
