package store

import (
	"context"
	"fmt"
)

// Reasons in remove_device notices for an admin's removals.
const (
	ReasonRemovedByAdmin = "removed_by_admin"
	ReasonUserDeleted    = "user_deleted"
)

// removeUserDevicesFromGroups runs the delivery service's compromise
// recovery for every device of a user, inside the caller's use case: each
// device's memberships end, each group gets a remove_device notice with
// reason, and the devices' key packages go.
func removeUserDevicesFromGroups(ctx context.Context, tx *Tx, userID, reason string) error {
	var devices []string
	if err := tx.NewRaw(`SELECT id FROM devices WHERE user_id = ? ORDER BY id`, userID).Scan(ctx, &devices); err != nil {
		return fmt.Errorf("list user devices: %w", err)
	}
	for _, d := range devices {
		if err := recoverDevice(ctx, tx, d, reason); err != nil {
			return err
		}
	}
	return nil
}
