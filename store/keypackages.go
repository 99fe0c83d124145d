package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/models"
)

// Key-package rules that are not configuration.
const (
	// MaxKeyPackagesPerUpload bounds one upload batch.
	MaxKeyPackagesPerUpload = 100
	// MaxKeyPackageBytes bounds one MLSMessage(key_package). Classical
	// suites need well under 1 KiB; the margin leaves room for
	// post-quantum suites and extensions.
	MaxKeyPackageBytes = 16 << 10
	// KeyPackageClockSkew is how far in the future a not_before may lie
	// (clients' clocks differ from the server's).
	KeyPackageClockSkew = 5 * time.Minute
)

// UploadKeyPackagesInput is one upload batch of a device.
type UploadKeyPackagesInput struct {
	DeviceID string
	// Packages are MLSMessage(key_package) encodings.
	Packages [][]byte
	// LastResortIndex is the index in Packages of the device's new
	// last-resort package, or -1.
	LastResortIndex int
	// MaxLifetime bounds not_after - not_before.
	MaxLifetime time.Duration
	// MaxPerDevice bounds the device's stored normal packages afterwards.
	MaxPerDevice int
	// LowWater is the low-water mark reported in the returned counts.
	LowWater int
}

// checkedKeyPackage is an upload element that passed every check.
type checkedKeyPackage struct {
	ref        []byte
	suite      uint16
	notAfterMs int64
	data       []byte
	lastResort bool
}

// UploadKeyPackages validates a batch of key packages and stores them all or
// none. Parsing and signature checks run before the write, off the writer.
// Any invalid package rejects the batch with an EINVALID error whose Index
// names it. The last-resort package, if any, replaces the device's previous
// last-resort package for its suite. It returns the device's stock.
func (s *Store) UploadKeyPackages(ctx context.Context, in UploadKeyPackagesInput) (*models.KeyPackageCounts, error) {
	if len(in.Packages) == 0 || len(in.Packages) > MaxKeyPackagesPerUpload {
		return nil, models.Errorf(models.EINVALID, "key_package_batch_size", "a batch holds 1 to %d key packages, not %d", MaxKeyPackagesPerUpload, len(in.Packages))
	}
	if in.LastResortIndex < -1 || in.LastResortIndex >= len(in.Packages) {
		return nil, models.Errorf(models.EINVALID, "last_resort_index_out_of_range", "last_resort_index %d does not name a package of this batch of %d", in.LastResortIndex, len(in.Packages))
	}
	checked, err := checkKeyPackages(in.DeviceID, in.Packages, s.now(), in.MaxLifetime)
	if err != nil {
		return nil, err
	}
	if in.LastResortIndex >= 0 {
		checked[in.LastResortIndex].lastResort = true
	}
	newNormal := len(checked)
	if in.LastResortIndex >= 0 {
		newNormal--
	}

	var counts *models.KeyPackageCounts
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var revoked sql.NullInt64
		err := tx.NewRaw(`SELECT revoked_at FROM devices WHERE id = ?`, in.DeviceID).Scan(ctx, &revoked)
		if errors.Is(err, sql.ErrNoRows) || revoked.Valid {
			return ErrSessionInvalid
		}
		if err != nil {
			return fmt.Errorf("read device: %w", err)
		}
		refs := make([][]byte, len(checked))
		for i, c := range checked {
			refs[i] = c.ref
		}
		var taken [][]byte
		if err := tx.NewRaw(`SELECT ref FROM key_packages WHERE ref IN (?)
UNION SELECT ref FROM key_package_claims WHERE ref IN (?)`, bun.In(refs), bun.In(refs)).Scan(ctx, &taken); err != nil {
			return fmt.Errorf("find duplicate refs: %w", err)
		}
		if len(taken) > 0 {
			dup := make(map[string]bool, len(taken))
			for _, r := range taken {
				dup[string(r)] = true
			}
			for i, c := range checked {
				if dup[string(c.ref)] {
					return invalidAt(i, "key_package_duplicate", "key package %d was uploaded before (its KeyPackageRef is already known); key packages are single-use", i)
				}
			}
		}
		if newNormal > 0 {
			var have int
			if err := tx.NewRaw(`SELECT count(*) FROM key_packages WHERE device_id = ? AND last_resort = 0`, in.DeviceID).Scan(ctx, &have); err != nil {
				return fmt.Errorf("count key packages: %w", err)
			}
			if have+newNormal > in.MaxPerDevice {
				return models.Errorf(models.EQUOTA, "key_package_quota",
					"this device holds %d key packages; %d more would pass the limit of %d", have, newNormal, in.MaxPerDevice)
			}
		}
		now := models.Millis(tx.Now())
		rows := make([]keyPackageRow, len(checked))
		for i, c := range checked {
			if c.lastResort {
				if _, err := tx.NewRaw(`DELETE FROM key_packages WHERE device_id = ? AND cipher_suite = ? AND last_resort = 1`,
					in.DeviceID, c.suite).Exec(ctx); err != nil {
					return fmt.Errorf("replace last-resort key package: %w", err)
				}
			}
			rows[i] = keyPackageRow{Ref: c.ref, DeviceID: in.DeviceID, CipherSuite: c.suite, LastResort: b2i(c.lastResort),
				Data: c.data, NotAfter: c.notAfterMs, CreatedAt: now}
		}
		if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return fmt.Errorf("insert key packages: %w", err)
		}
		counts, err = keyPackageCounts(ctx, tx, in.DeviceID, now, in.LowWater)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("upload key packages: %w", err)
	}
	return counts, nil
}

type keyPackageRow struct {
	bun.BaseModel `bun:"table:key_packages"`
	Ref           []byte `bun:"ref,pk"`
	DeviceID      string `bun:"device_id"`
	CipherSuite   uint16 `bun:"cipher_suite"`
	LastResort    int    `bun:"last_resort"`
	Data          []byte `bun:"data"`
	NotAfter      int64  `bun:"not_after"`
	CreatedAt     int64  `bun:"created_at"`
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func invalidAt(i int, reason, format string, args ...any) *models.Error {
	e := models.Errorf(models.EINVALID, reason, format, args...)
	e.Index = &i
	return e
}

// CheckKeyPackages applies every stateless upload rule to a batch of
// MLSMessage(key_package) encodings of device deviceID at time now: size,
// strict parse (mls10, known suite, no trailing bytes), a suite whose
// signatures the server can verify, valid leaf-node and key-package
// signatures, a BasicCredential whose identity is exactly
// models.KeyPackageIdentity(deviceID), a lifetime that is current and no
// longer than maxLifetime, and no ref twice in the batch. The first failure
// is returned as an EINVALID error naming its index.
func checkKeyPackages(deviceID string, pkgs [][]byte, now time.Time, maxLifetime time.Duration) ([]checkedKeyPackage, error) {
	identity := models.KeyPackageIdentity(deviceID)
	seen := make(map[string]int, len(pkgs))
	out := make([]checkedKeyPackage, len(pkgs))
	for i, b := range pkgs {
		c, err := checkKeyPackage(i, b, identity, now, maxLifetime)
		if err != nil {
			return nil, err
		}
		if j, ok := seen[string(c.ref)]; ok {
			return nil, invalidAt(i, "key_package_duplicate", "key package %d repeats key package %d", i, j)
		}
		seen[string(c.ref)] = i
		out[i] = c
	}
	return out, nil
}

func checkKeyPackage(i int, b []byte, identity string, now time.Time, maxLifetime time.Duration) (checkedKeyPackage, error) {
	if len(b) > MaxKeyPackageBytes {
		return checkedKeyPackage{}, invalidAt(i, "key_package_too_large", "key package %d has %d bytes; the limit is %d", i, len(b), MaxKeyPackageBytes)
	}
	kp, err := mls.ParseKeyPackage(b)
	if err != nil {
		reason := "key_package_malformed"
		switch {
		case errors.Is(err, mls.ErrUnsupportedVersion):
			reason = "key_package_version"
		case errors.Is(err, mls.ErrUnsupportedSuite):
			reason = "key_package_cipher_suite"
		case errors.Is(err, mls.ErrWrongWireFormat), errors.Is(err, mls.ErrUnknownWireFormat):
			reason = "key_package_wire_format"
		case errors.Is(err, mls.ErrTrailingData):
			reason = "key_package_trailing_data"
		}
		return checkedKeyPackage{}, invalidAt(i, reason, "key package %d is not a valid MLSMessage(key_package): %v", i, err)
	}
	if !mls.SignatureSupported(kp.CipherSuite) {
		return checkedKeyPackage{}, invalidAt(i, "key_package_cipher_suite",
			"key package %d uses cipher suite %s, whose signatures this server cannot verify", i, mls.SuiteName(kp.CipherSuite))
	}
	if err := kp.VerifySignature(); err != nil {
		return checkedKeyPackage{}, invalidAt(i, "key_package_signature", "key package %d: a signature does not verify: %v", i, err)
	}
	if kp.CredentialType() != mls.CredentialBasic {
		return checkedKeyPackage{}, invalidAt(i, "key_package_credential",
			"key package %d has a %v credential; only a BasicCredential with identity %q is accepted", i, kp.CredentialType(), identity)
	}
	if string(kp.Identity()) != identity {
		return checkedKeyPackage{}, invalidAt(i, "key_package_identity",
			"key package %d is not bound to this device: its credential identity must be exactly %q", i, identity)
	}
	nb, na := kp.Lifetime()
	nowS := uint64(max(now.Unix(), 0))
	switch {
	case nb > na:
		return checkedKeyPackage{}, invalidAt(i, "key_package_lifetime", "key package %d has not_before after not_after", i)
	case na < nowS:
		return checkedKeyPackage{}, invalidAt(i, "key_package_expired", "key package %d expired at %s", i, unixString(na))
	case nb > nowS+uint64(KeyPackageClockSkew/time.Second):
		return checkedKeyPackage{}, invalidAt(i, "key_package_not_yet_valid", "key package %d is not valid before %s", i, unixString(nb))
	case na-nb > uint64(maxLifetime/time.Second):
		return checkedKeyPackage{}, invalidAt(i, "key_package_lifetime",
			"key package %d has a lifetime of %s; the longest accepted is %s (set not_before and not_after)", i, secondsString(na-nb), maxLifetime)
	}
	// na <= now + skew + maxLifetime here, far below the int64 range, but
	// cap anyway so a configuration change can never overflow.
	notAfterMs := int64(math.MaxInt64)
	if na < math.MaxInt64/1000 {
		notAfterMs = int64(na) * 1000
	}
	data := make([]byte, len(b)) // b aliases the request buffer
	copy(data, b)
	return checkedKeyPackage{ref: kp.Ref(), suite: kp.CipherSuite, notAfterMs: notAfterMs, data: data}, nil
}

func unixString(s uint64) string {
	if s > math.MaxInt64/2 {
		return fmt.Sprintf("%d (Unix seconds)", s)
	}
	return time.Unix(int64(s), 0).UTC().Format(time.RFC3339)
}

func secondsString(s uint64) string {
	if s > uint64(math.MaxInt64/time.Second) {
		return fmt.Sprintf("%d seconds", s)
	}
	return (time.Duration(s) * time.Second).String()
}

// KeyPackageCounts returns a device's claimable (unexpired) packages per
// cipher suite and whether it should upload more (normal packages below
// lowWater). The sync layer can call it when a device connects.
func (s *Store) KeyPackageCounts(ctx context.Context, deviceID string, lowWater int) (*models.KeyPackageCounts, error) {
	c, err := keyPackageCounts(ctx, s.rdb, deviceID, models.Millis(s.now()), lowWater)
	if err != nil {
		return nil, fmt.Errorf("count key packages: %w", err)
	}
	return c, nil
}

func keyPackageCounts(ctx context.Context, db bun.IDB, deviceID string, nowMs int64, lowWater int) (*models.KeyPackageCounts, error) {
	var rows []struct {
		CipherSuite uint16 `bun:"cipher_suite"`
		Normal      int    `bun:"normal"`
		LastResort  int    `bun:"last_resort"`
	}
	err := db.NewRaw(`SELECT cipher_suite, sum(CASE WHEN last_resort = 0 THEN 1 ELSE 0 END) AS normal, max(last_resort) AS last_resort
FROM key_packages WHERE device_id = ? AND not_after >= ?
GROUP BY cipher_suite ORDER BY cipher_suite`, deviceID, nowMs).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("count key packages: %w", err)
	}
	out := &models.KeyPackageCounts{Suites: make([]models.KeyPackageCount, 0, len(rows)), LowWater: lowWater, Low: len(rows) == 0}
	for _, r := range rows {
		c := models.KeyPackageCount{CipherSuite: r.CipherSuite, Normal: r.Normal, LastResort: r.LastResort == 1, Low: r.Normal < lowWater}
		out.Low = out.Low || c.Low
		out.Suites = append(out.Suites, c)
	}
	return out, nil
}

// ResolveClaimTarget finds an enabled user by id (a UUID) or username
// (case-insensitive). Unknown and disabled users are both ENOTFOUND.
func (s *Store) ResolveClaimTarget(ctx context.Context, idOrName string) (string, error) {
	col, key := "username", strings.ToLower(idOrName)
	if u, err := uuid.Parse(idOrName); err == nil && len(idOrName) == 36 {
		col, key = "id", u.String()
	}
	var id string
	err := s.rdb.NewRaw(`SELECT id FROM users WHERE `+col+` = ? AND disabled_at IS NULL`, key).Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errUserNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve user: %w", err)
	}
	return id, nil
}

var errUserNotFound = models.Errorf(models.ENOTFOUND, "user_not_found", "no such user")

// ClaimKeyPackagesInput is one claim.
type ClaimKeyPackagesInput struct {
	ClaimerDeviceID string
	TargetUserID    string
	CipherSuite     uint16
	// LowWater is the mark below which the owner is told to upload more.
	LowWater int
}

// ClaimKeyPackages hands out one key package of the suite for each active
// device of the target user except the claimer's own device, in one use
// case: the oldest unexpired normal package of each device is chosen and
// deleted; a device with none left gives its last-resort package, which
// stays stored. Devices with neither are listed as missing. Each handed-out
// ref is recorded in key_package_claims with the claimer and the owner. For
// each device that this claim takes below the low-water mark, the
// KeyPackagesLow hook (Options) runs inside the same transaction.
func (s *Store) ClaimKeyPackages(ctx context.Context, in ClaimKeyPackagesInput) (*models.KeyPackageClaim, error) {
	var out *models.KeyPackageClaim
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		out = &models.KeyPackageClaim{UserID: in.TargetUserID, CipherSuite: in.CipherSuite}
		var disabled sql.NullInt64
		err := tx.NewRaw(`SELECT disabled_at FROM users WHERE id = ?`, in.TargetUserID).Scan(ctx, &disabled)
		if errors.Is(err, sql.ErrNoRows) || disabled.Valid {
			return errUserNotFound
		}
		if err != nil {
			return fmt.Errorf("read user: %w", err)
		}
		var devices []string
		if err := tx.NewRaw(`SELECT id FROM devices WHERE user_id = ? AND revoked_at IS NULL AND id <> ? ORDER BY created_at, id`,
			in.TargetUserID, in.ClaimerDeviceID).Scan(ctx, &devices); err != nil {
			return fmt.Errorf("list devices: %w", err)
		}
		now := models.Millis(tx.Now())
		for _, dev := range devices {
			var pick struct {
				Ref        []byte `bun:"ref"`
				Data       []byte `bun:"data"`
				LastResort int    `bun:"last_resort"`
			}
			err := tx.NewRaw(`SELECT ref, data, last_resort FROM key_packages
WHERE device_id = ? AND cipher_suite = ? AND not_after >= ?
ORDER BY last_resort, created_at, `+tx.w.eng.rowID()+` LIMIT 1`, dev, in.CipherSuite, now).Scan(ctx, &pick)
			if errors.Is(err, sql.ErrNoRows) {
				out.MissingDevices = append(out.MissingDevices, dev)
				continue
			}
			if err != nil {
				return fmt.Errorf("pick key package: %w", err)
			}
			if pick.LastResort == 0 {
				if _, err := tx.NewRaw(`DELETE FROM key_packages WHERE ref = ?`, pick.Ref).Exec(ctx); err != nil {
					return fmt.Errorf("delete claimed key package: %w", err)
				}
				// Counting stops at the mark: only a crossing matters here,
				// and a large pool must not make every claim slower.
				var remaining int
				if err := tx.NewRaw(`SELECT count(*) FROM (SELECT 1 FROM key_packages
WHERE device_id = ? AND cipher_suite = ? AND last_resort = 0 AND not_after >= ? LIMIT ?) AS pool`,
					dev, in.CipherSuite, now, in.LowWater).Scan(ctx, &remaining); err != nil {
					return fmt.Errorf("count remaining key packages: %w", err)
				}
				if remaining == in.LowWater-1 { // this claim crossed the mark
					low := models.KeyPackageLow{DeviceID: dev, UserID: in.TargetUserID, CipherSuite: in.CipherSuite, Remaining: remaining, LowWater: in.LowWater}
					out.Low = append(out.Low, low)
					if s.keyPackagesLow != nil {
						if err := s.keyPackagesLow(ctx, tx, low); err != nil {
							return fmt.Errorf("key packages low hook: %w", err)
						}
					}
				}
			}
			if _, err := tx.NewRaw(`INSERT INTO key_package_claims (claimer_device_id, ref, device_id, claimed_at) VALUES (?, ?, ?, ?)
ON CONFLICT (claimer_device_id, ref) DO UPDATE SET claimed_at = excluded.claimed_at`,
				in.ClaimerDeviceID, pick.Ref, dev, now).Exec(ctx); err != nil {
				return fmt.Errorf("record claim: %w", err)
			}
			out.Packages = append(out.Packages, models.ClaimedKeyPackage{DeviceID: dev, Ref: pick.Ref, Data: pick.Data, LastResort: pick.LastResort == 1})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim key packages: %w", err)
	}
	return out, nil
}

// KeyPackageClaimOwner returns the device that owns the key package with
// ref as handed out to claimer, or ENOTFOUND when claimer never claimed it.
// Welcomes are routed by this.
func (s *Store) KeyPackageClaimOwner(ctx context.Context, claimerDeviceID string, ref []byte) (string, error) {
	var dev string
	err := s.rdb.NewRaw(`SELECT device_id FROM key_package_claims WHERE claimer_device_id = ? AND ref = ?`, claimerDeviceID, ref).Scan(ctx, &dev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", models.Errorf(models.ENOTFOUND, "key_package_not_claimed", "no key package with this ref was claimed by this device")
	}
	if err != nil {
		return "", fmt.Errorf("read key package claim: %w", err)
	}
	return dev, nil
}
