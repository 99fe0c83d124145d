package store

import (
	"context"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
)

// testClock is an adjustable clock for store tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openClocked(tb testing.TB, opts Options) (*Store, *testClock) {
	tb.Helper()
	clock := &testClock{t: time.Now()}
	opts.Path = filepath.Join(tb.TempDir(), "data", "sovereign.db")
	opts.Database = testdb.URL(tb)
	opts.Now = clock.Now
	s, err := Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, clock
}

// seedUser creates a user with n devices and returns their ids.
func seedUser(tb testing.TB, s *Store, name string, n int) (string, []string) {
	tb.Helper()
	var user string
	var devs []string
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		var err error
		if user, err = InsertUser(ctx, tx, name, name, models.RoleMember); err != nil {
			return err
		}
		for i := range n {
			d, err := InsertDevice(ctx, tx, user, name+strconv.Itoa(i))
			if err != nil {
				return err
			}
			devs = append(devs, d)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return user, devs
}

func buildFor(device string, now time.Time, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(device),
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}).Bytes
	}
	return out
}

func uploadInput(device string, pkgs [][]byte, lastResort int) UploadKeyPackagesInput {
	return UploadKeyPackagesInput{DeviceID: device, Packages: pkgs, LastResortIndex: lastResort,
		MaxLifetime: 90 * 24 * time.Hour, MaxPerDevice: 1000, LowWater: 3}
}

// TestKeyPackagesLowHook proves the seam the sync layer uses to tell a
// device to upload more: the hook runs once, inside the claim's
// transaction, when a claim takes the device below the low-water mark.
func TestKeyPackagesLowHook(t *testing.T) {
	var mu sync.Mutex
	var lows []models.KeyPackageLow
	var fail bool
	s, clock := openClocked(t, Options{KeyPackagesLow: func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return models.Errorf(models.EINTERNAL, "test", "hook failed")
		}
		lows = append(lows, low)
		return nil
	}})
	ctx := context.Background()
	alice, devs := seedUser(t, s, "alice", 1)
	_, bob := seedUser(t, s, "bob", 1)
	if _, err := s.UploadKeyPackages(ctx, uploadInput(devs[0], buildFor(devs[0], clock.Now(), 5), 4)); err != nil {
		t.Fatal(err)
	}
	claim := func() (*models.KeyPackageClaim, error) {
		return s.ClaimKeyPackages(ctx, ClaimKeyPackagesInput{ClaimerDeviceID: bob[0], TargetUserID: alice, CipherSuite: 1, LowWater: 3})
	}
	// 4 normal: 4 -> 3 (not below 3), 3 -> 2 (crossed), 2 -> 1, 1 -> 0, then last resort.
	wantLow := []bool{false, true, false, false, false, false}
	for i, want := range wantLow {
		c, err := claim()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(c.Low) == 1; got != want {
			t.Fatalf("claim %d: low = %+v, want crossing %v", i, c.Low, want)
		}
	}
	if len(lows) != 1 || lows[0] != (models.KeyPackageLow{DeviceID: devs[0], UserID: alice, CipherSuite: 1, Remaining: 2, LowWater: 3}) {
		t.Fatalf("hook calls = %+v", lows)
	}

	// A failing hook fails the claim: nothing is handed out or deleted.
	if _, err := s.UploadKeyPackages(ctx, uploadInput(devs[0], buildFor(devs[0], clock.Now(), 3), -1)); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := claim(); err == nil {
		t.Fatal("claim succeeded although the hook failed")
	}
	c, err := s.KeyPackageCounts(ctx, devs[0], 3)
	if err != nil || c.Suites[0].Normal != 3 {
		t.Fatalf("counts after a failed claim = %+v, %v", c, err)
	}
}

// TestCleanup runs every cleanup with the injected clock.
func TestCleanup(t *testing.T) {
	s, clock := openClocked(t, Options{})
	ctx := context.Background()
	alice, devs := seedUser(t, s, "alice", 2)
	_, bob := seedUser(t, s, "bob", 1)
	now := clock.Now()
	short := mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(devs[0]), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}).Bytes
	// Device 0: 3 normal + a last-resort package expiring in an hour;
	// device 1 (to be revoked): 4 normal.
	if _, err := s.UploadKeyPackages(ctx, uploadInput(devs[0], append(buildFor(devs[0], now, 3), short), 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadKeyPackages(ctx, uploadInput(devs[1], buildFor(devs[1], now, 4), -1)); err != nil {
		t.Fatal(err)
	}
	// Bob claims twice: two claim records.
	for range 2 {
		if _, err := s.ClaimKeyPackages(ctx, ClaimKeyPackagesInput{ClaimerDeviceID: bob[0], TargetUserID: alice, CipherSuite: 1, LowWater: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// Sessions: one live, one expired, one revoked.
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		for i, ttl := range []time.Duration{48 * time.Hour, time.Hour, 48 * time.Hour} {
			id, err := InsertSession(ctx, tx, alice, devs[0], []byte{byte(i)}, ttl)
			if err != nil {
				return err
			}
			if i == 2 {
				if _, err := tx.NewRaw(`UPDATE sessions SET revoked_at = ? WHERE id = ?`, models.Millis(tx.Now()), id).Exec(ctx); err != nil {
					return err
				}
			}
		}
		_, err := tx.NewRaw(`UPDATE devices SET revoked_at = ? WHERE id = ?`, models.Millis(tx.Now()), devs[1]).Exec(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := s.rdb.NewRaw(q).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// After two claims of one package per device: device 0 has 1 normal +
	// the last-resort package, device 1 has 2 normal.
	if n := count(`SELECT count(*) FROM key_packages`); n != 4 {
		t.Fatalf("%d rows before cleanup, want 4", n)
	}
	before := count(`SELECT count(*) FROM key_packages`)

	// Nothing is due yet except the revoked device's packages.
	if n, err := s.DeleteExpiredKeyPackages(ctx); err != nil || n != 0 {
		t.Fatalf("expired now: %d, %v", n, err)
	}
	revokedRows := count(`SELECT count(*) FROM key_packages WHERE device_id = '` + devs[1] + `'`)
	if n, err := s.DeleteRevokedDeviceKeyPackages(ctx); err != nil || n != 2 || revokedRows != 2 {
		t.Fatalf("revoked device: %d (want %d), %v", n, revokedRows, err)
	}
	if n, err := s.DeleteEndedSessions(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("ended sessions now: %d, %v", n, err)
	}

	// Two hours on, the short package has expired; a day and more on, the
	// expired and revoked sessions go.
	clock.Advance(2 * time.Hour)
	if n, err := s.DeleteExpiredKeyPackages(ctx); err != nil || n != 1 {
		t.Fatalf("expired after 2h: %d, %v", n, err)
	}
	if got := count(`SELECT count(*) FROM key_packages`); got != before-revokedRows-1 {
		t.Fatalf("%d rows left, want %d", got, before-revokedRows-1)
	}
	clock.Advance(24 * time.Hour)
	if n, err := s.DeleteEndedSessions(ctx, 24*time.Hour); err != nil || n != 2 {
		t.Fatalf("ended sessions after a day: %d, %v", n, err)
	}
	if n := count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions left, want the live one", n)
	}
	if n, err := s.DeleteOldKeyPackageClaims(ctx, 48*time.Hour); err != nil || n != 0 {
		t.Fatalf("young claims deleted: %d, %v", n, err)
	}
	clock.Advance(24 * time.Hour)
	if n, err := s.DeleteOldKeyPackageClaims(ctx, 48*time.Hour); err != nil || n != 4 {
		t.Fatalf("old claims: %d, %v (want 2 claims x 2 devices)", n, err)
	}
}

// TestCleanupChunks deletes more rows than one chunk.
func TestCleanupChunks(t *testing.T) {
	s, clock := openClocked(t, Options{})
	ctx := context.Background()
	_, devs := seedUser(t, s, "alice", 1)
	const n = cleanupChunk*2 + 7
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		for i := range n {
			if _, err := tx.NewRaw(`INSERT INTO key_packages (ref, device_id, cipher_suite, data, not_after, created_at) VALUES (?, ?, 1, ?, ?, ?)`,
				[]byte(strconv.Itoa(i)), devs[0], []byte{0}, models.Millis(tx.Now()), models.Millis(tx.Now())).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	before := s.WriterStats().UseCases
	got, err := s.DeleteExpiredKeyPackages(ctx)
	if err != nil || got != n {
		t.Fatalf("deleted %d, %v; want %d", got, err, n)
	}
	if uc := s.WriterStats().UseCases - before; uc != 3 {
		t.Fatalf("%d use cases, want 3 chunks", uc)
	}
}

func BenchmarkClaimKeyPackage(b *testing.B) {
	s, clock := openClocked(b, Options{})
	ctx := context.Background()
	alice, devs := seedUser(b, s, "alice", 1)
	_, bob := seedUser(b, s, "bob", 1)
	// Refill in batches of 100 outside the timer.
	pool := buildFor(devs[0], clock.Now(), 100)
	refill := func() {
		for i := range pool {
			pool[i] = mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(devs[0])}).Bytes
		}
		if _, err := s.UploadKeyPackages(ctx, UploadKeyPackagesInput{DeviceID: devs[0], Packages: pool, LastResortIndex: -1,
			MaxLifetime: 90 * 24 * time.Hour, MaxPerDevice: 1 << 20, LowWater: 10}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%100 == 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		c, err := s.ClaimKeyPackages(ctx, ClaimKeyPackagesInput{ClaimerDeviceID: bob[0], TargetUserID: alice, CipherSuite: 1, LowWater: 10})
		if err != nil || len(c.Packages) != 1 || c.Packages[0].LastResort {
			b.Fatalf("claim: %+v %v", c, err)
		}
	}
}

// BenchmarkClaimKeyPackageParallel measures claims from many goroutines,
// where group commit shares each fsync.
func BenchmarkClaimKeyPackageParallel(b *testing.B) {
	s, _ := openClocked(b, Options{})
	ctx := context.Background()
	alice, devs := seedUser(b, s, "alice", 1)
	_, bob := seedUser(b, s, "bob", 1)
	total := b.N + 100
	for done := 0; done < total; done += 100 {
		pkgs := make([][]byte, 100)
		for i := range pkgs {
			pkgs[i] = mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(devs[0])}).Bytes
		}
		if _, err := s.UploadKeyPackages(ctx, UploadKeyPackagesInput{DeviceID: devs[0], Packages: pkgs, LastResortIndex: -1,
			MaxLifetime: 90 * 24 * time.Hour, MaxPerDevice: 1 << 30, LowWater: 10}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := s.ClaimKeyPackages(ctx, ClaimKeyPackagesInput{ClaimerDeviceID: bob[0], TargetUserID: alice, CipherSuite: 1, LowWater: 10})
			if err != nil || len(c.Packages) != 1 || c.Packages[0].LastResort {
				b.Errorf("claim: %+v %v", c, err)
				return
			}
		}
	})
}

// BenchmarkCheckKeyPackages measures the CPU work of validating a full
// upload batch (100 packages: parse, two Ed25519 verifications, rules).
func BenchmarkCheckKeyPackages(b *testing.B) {
	dev := "0192b6a0-0000-7000-8000-000000000001"
	now := time.Now()
	pkgs := buildFor(dev, now, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := checkKeyPackages(dev, pkgs, now, 90*24*time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadKeyPackages measures a whole upload of 100 packages:
// validation plus the durable write.
func BenchmarkUploadKeyPackages(b *testing.B) {
	s, clock := openClocked(b, Options{})
	ctx := context.Background()
	_, devs := seedUser(b, s, "alice", 1)
	batches := make([][][]byte, b.N)
	for i := range batches {
		batches[i] = buildFor(devs[0], clock.Now(), 100)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.UploadKeyPackages(ctx, UploadKeyPackagesInput{DeviceID: devs[0], Packages: batches[i], LastResortIndex: -1,
			MaxLifetime: 90 * 24 * time.Hour, MaxPerDevice: 1 << 30, LowWater: 10}); err != nil {
			b.Fatal(err)
		}
	}
}
