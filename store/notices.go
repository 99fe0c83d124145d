package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// KeyPackageExpiryWarning is how long before its end of lifetime a device
// is told that a key package expires (at most; the server shortens it for
// short maximum lifetimes).
const KeyPackageExpiryWarning = 7 * 24 * time.Hour

// NotifyExpiringKeyPackages tells each active device whose key packages
// end their lifetime within `within` (and have not been announced yet) with
// one key_packages_expiring notice per cipher suite, so that its client
// uploads fresh ones (a new last-resort package replaces the old). Each
// package is announced once. It returns how many notices it posted.
func (s *Store) NotifyExpiringKeyPackages(ctx context.Context, within time.Duration) (int64, error) {
	var posted int64
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		now := tx.Now()
		cutoff := models.Millis(now.Add(within))
		var rows []struct {
			DeviceID    string `bun:"device_id"`
			CipherSuite int64  `bun:"cipher_suite"`
			Normal      int    `bun:"normal"`
			LastResort  int    `bun:"last_resort"`
		}
		err := tx.NewRaw(`SELECT k.device_id, k.cipher_suite,
  SUM(CASE WHEN k.last_resort = 0 THEN 1 ELSE 0 END) AS normal, MAX(k.last_resort) AS last_resort
FROM key_packages k JOIN devices d ON d.id = k.device_id
WHERE k.not_after < ? AND k.not_after > ? AND k.expiry_notified_at IS NULL AND d.revoked_at IS NULL
GROUP BY k.device_id, k.cipher_suite ORDER BY k.device_id, k.cipher_suite LIMIT 1000`, cutoff, models.Millis(now)).Scan(ctx, &rows)
		if err != nil {
			return fmt.Errorf("find expiring key packages: %w", err)
		}
		for _, r := range rows {
			n := models.KeyPackagesExpiringNotice{Type: models.NoticeKeyPackagesExpiring, DeviceID: r.DeviceID,
				CipherSuite: uint16(r.CipherSuite), Normal: r.Normal, LastResort: r.LastResort == 1,
				Before: now.Add(within).UTC().Format(time.RFC3339)}
			if _, err := AppendDeviceNotice(ctx, tx, r.DeviceID, n); err != nil {
				return err
			}
			if _, err := tx.NewRaw(`UPDATE key_packages SET expiry_notified_at = ?
WHERE device_id = ? AND cipher_suite = ? AND not_after < ? AND expiry_notified_at IS NULL`,
				models.Millis(now), r.DeviceID, r.CipherSuite, cutoff).Exec(ctx); err != nil {
				return fmt.Errorf("mark expiring key packages: %w", err)
			}
			posted++
		}
		return nil
	})
	return posted, err
}
