package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// Server notices are feed events of kind "notice" addressed to one device.
// Their payload is a UTF-8 JSON object whose "type" says what happened.
const (
	// NoticeKeyPackagesLow: a claim took the device's normal key packages
	// for a suite below the low-water mark; upload more.
	NoticeKeyPackagesLow = "key_packages_low"
)

// KeyPackagesLowNotice is the payload of a key_packages_low notice.
type KeyPackagesLowNotice struct {
	Type        string `json:"type"`
	CipherSuite uint16 `json:"cipher_suite"`
	Remaining   int    `json:"remaining"`
	LowWater    int    `json:"low_water"`
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

// AppendDeviceNotice stores a notice addressed to deviceID inside a use
// case and publishes it once the use case is durably committed.
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

// NotifyKeyPackagesLow is the store's KeyPackagesLow hook for the feed: it
// tells the device, in its feed, to upload key packages.
func NotifyKeyPackagesLow() func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
	return func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
		_, err := AppendDeviceNotice(ctx, tx, low.DeviceID, KeyPackagesLowNotice{
			Type: NoticeKeyPackagesLow, CipherSuite: low.CipherSuite, Remaining: low.Remaining, LowWater: low.LowWater,
		})
		return err
	}
}
