package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

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

// AppendDeviceNotice stores a notice addressed to deviceID inside a use
// case and publishes it to pub once the use case is durably committed.
func AppendDeviceNotice(ctx context.Context, tx *Tx, pub models.Publisher, deviceID string, notice any) (*models.Event, error) {
	payload, err := json.Marshal(notice)
	if err != nil {
		return nil, fmt.Errorf("encode notice: %w", err)
	}
	var last int64
	if err := tx.NewRaw(`SELECT coalesce((SELECT server_ts FROM events ORDER BY seq DESC LIMIT 1), 0)`).Scan(ctx, &last); err != nil {
		return nil, fmt.Errorf("read last server time: %w", err)
	}
	ts := max(tx.Now().UnixMicro(), last) // never decreasing along seq
	e := &models.Event{
		ID:                uuid.Must(uuid.NewV7()).String(),
		Kind:              models.KindNotice,
		RecipientDeviceID: deviceID,
		Payload:           payload,
	}
	err = tx.NewRaw(`INSERT INTO events (id, server_ts, kind, recipient_device_id, payload) VALUES (?, ?, 'notice', ?, ?) RETURNING seq`,
		e.ID, ts, deviceID, payload).Scan(ctx, &e.Seq)
	if err != nil {
		return nil, fmt.Errorf("insert notice: %w", err)
	}
	e.ServerTime = time.UnixMicro(ts).UTC()
	if pub != nil {
		tx.AfterCommit(func() { pub.Publish(e, []string{deviceID}) })
	}
	return e, nil
}

// NotifyKeyPackagesLow is the store's KeyPackagesLow hook for the feed: it
// tells the device, in its feed, to upload key packages.
func NotifyKeyPackagesLow(pub models.Publisher) func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
	return func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
		_, err := AppendDeviceNotice(ctx, tx, pub, low.DeviceID, KeyPackagesLowNotice{
			Type: NoticeKeyPackagesLow, CipherSuite: low.CipherSuite, Remaining: low.Remaining, LowWater: low.LowWater,
		})
		return err
	}
}
