package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// NotifyKeyPackagesLow posts a key_packages_low notice to the feed of the
// device a claim took below the low-water mark, inside the claim's use case,
// and publishes it once committed. It is the store's default KeyPackagesLow
// hook, so a device learns to replenish while it is connected.
func NotifyKeyPackagesLow(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
	payload, err := json.Marshal(models.KeyPackagesLowNotice{
		Type: models.NoticeKeyPackagesLow, DeviceID: low.DeviceID, CipherSuite: low.CipherSuite,
		Remaining: low.Remaining, LowWater: low.LowWater,
	})
	if err != nil {
		return fmt.Errorf("encode key packages low notice: %w", err)
	}
	ev := &models.Event{Kind: models.KindNotice, RecipientDeviceID: low.DeviceID, Payload: payload}
	if err := insertEvent(ctx, tx, ev); err != nil {
		return err
	}
	publish(tx, ev, []string{low.DeviceID})
	return nil
}

// AppendEvent stores ev inside a use case (filling in ID, Seq and
// ServerTime, counting group bytes) and publishes it to devices once the
// use case is durably committed. devices are the feeds the event joins.
func AppendEvent(ctx context.Context, tx *Tx, ev *models.Event, devices []string) error {
	if err := insertEvent(ctx, tx, ev); err != nil {
		return err
	}
	publish(tx, ev, devices)
	return nil
}

// AppendDeviceNotice stores a notice (a JSON object) addressed to deviceID
// inside a use case and publishes it once the use case is durably
// committed.
func AppendDeviceNotice(ctx context.Context, tx *Tx, deviceID string, notice any) (*models.Event, error) {
	payload, err := json.Marshal(notice)
	if err != nil {
		return nil, fmt.Errorf("encode notice: %w", err)
	}
	e := &models.Event{Kind: models.KindNotice, RecipientDeviceID: deviceID, Payload: payload}
	if err := AppendEvent(ctx, tx, e, []string{deviceID}); err != nil {
		return nil, err
	}
	return e, nil
}
