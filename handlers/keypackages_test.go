package handlers_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

type suiteCount struct {
	CipherSuite int  `json:"cipher_suite"`
	Normal      int  `json:"normal"`
	LastResort  bool `json:"last_resort"`
	Low         bool `json:"low"`
}

type counts struct {
	Suites   []suiteCount `json:"suites"`
	LowWater int          `json:"low_water"`
	Low      bool         `json:"low"`
}

type claimed struct {
	DeviceID   string `json:"device_id"`
	Ref        []byte `json:"ref"`
	KeyPackage []byte `json:"key_package"`
	LastResort bool   `json:"last_resort"`
}

type claimResult struct {
	UserID         string    `json:"user_id"`
	CipherSuite    int       `json:"cipher_suite"`
	KeyPackages    []claimed `json:"key_packages"`
	MissingDevices []string  `json:"missing_devices"`
}

func getCounts(t *testing.T, s *testutil.Server, acc testutil.Account) counts {
	t.Helper()
	r := s.Do(t, "GET", "/v1/key-packages/count", acc.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("count: %d %s", r.StatusCode, r.Body)
	}
	var c counts
	r.JSON(t, &c)
	return c
}

func claim(t *testing.T, s *testutil.Server, acc testutil.Account, user string, suite int) (int, claimResult, problem) {
	t.Helper()
	r := s.Do(t, "POST", "/v1/users/"+user+"/key-packages/claim", acc.Token, map[string]any{"cipher_suite": suite})
	var res claimResult
	var p problem
	if r.StatusCode == http.StatusOK {
		r.JSON(t, &res)
	} else {
		r.JSON(t, &p)
	}
	return r.StatusCode, res, p
}

func upload(t *testing.T, s *testutil.Server, acc testutil.Account, body map[string]any) (int, problem) {
	t.Helper()
	r := s.Do(t, "POST", "/v1/key-packages", acc.Token, body)
	var p problem
	if r.StatusCode != http.StatusCreated {
		r.JSON(t, &p)
	}
	return r.StatusCode, p
}

func storedKeyPackages(t *testing.T, s *testutil.Server) int {
	t.Helper()
	var n int
	if err := s.Store.ReadDB().NewRaw(`SELECT count(*) FROM key_packages`).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKeyPackageUploadCountClaim(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)

	if c := getCounts(t, s, alice); len(c.Suites) != 0 || !c.Low || c.LowWater != 10 {
		t.Fatalf("empty device counts = %+v", c)
	}
	normal, last := s.UploadKeyPackages(t, alice, 3, true)
	c := getCounts(t, s, alice)
	if len(c.Suites) != 1 || c.Suites[0] != (suiteCount{CipherSuite: 1, Normal: 3, LastResort: true, Low: true}) || !c.Low {
		t.Fatalf("counts after upload = %+v", c)
	}

	// Bob claims Alice by username: the oldest normal package, verbatim.
	st, res, p := claim(t, s, bob, "alice", 1)
	if st != http.StatusOK {
		t.Fatalf("claim: %d %+v", st, p)
	}
	if res.UserID != alice.UserID || res.CipherSuite != 1 || len(res.KeyPackages) != 1 || len(res.MissingDevices) != 0 {
		t.Fatalf("claim = %+v", res)
	}
	got := res.KeyPackages[0]
	if got.DeviceID != alice.DeviceID || got.LastResort || !bytes.Equal(got.KeyPackage, normal[0].Bytes) || !bytes.Equal(got.Ref, normal[0].Ref) {
		t.Fatalf("claimed %+v, want the first normal package", got)
	}
	owner, err := s.Store.KeyPackageClaimOwner(context.Background(), bob.DeviceID, got.Ref)
	if err != nil || owner != alice.DeviceID {
		t.Fatalf("claim record: owner %q, %v", owner, err)
	}
	if _, err := s.Store.KeyPackageClaimOwner(context.Background(), alice.DeviceID, got.Ref); !models.IsCode(err, models.ENOTFOUND) {
		t.Fatalf("claim record for a device that did not claim: %v", err)
	}
	// By user id: the next one.
	_, res, _ = claim(t, s, bob, alice.UserID, 1)
	if len(res.KeyPackages) != 1 || !bytes.Equal(res.KeyPackages[0].Ref, normal[1].Ref) {
		t.Fatalf("second claim = %+v", res)
	}
	if c := getCounts(t, s, alice); c.Suites[0].Normal != 1 || !c.Suites[0].LastResort {
		t.Fatalf("counts after two claims = %+v", c)
	}
	_, res, _ = claim(t, s, bob, "ALICE", 1) // usernames are case-insensitive
	if !bytes.Equal(res.KeyPackages[0].Ref, normal[2].Ref) {
		t.Fatalf("third claim = %+v", res)
	}
	for range 2 {
		_, res, _ = claim(t, s, bob, "alice", 1)
		if !res.KeyPackages[0].LastResort || !bytes.Equal(res.KeyPackages[0].Ref, last.Ref) {
			t.Fatalf("claim after exhaustion = %+v, want the last-resort package", res)
		}
	}
	// A suite Alice has nothing for: her device is missing.
	_, res, _ = claim(t, s, bob, "alice", 2)
	if len(res.KeyPackages) != 0 || len(res.MissingDevices) != 1 || res.MissingDevices[0] != alice.DeviceID {
		t.Fatalf("claim of an empty suite = %+v", res)
	}
}

func TestKeyPackageUploadRejectsForgeries(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	now := s.Clock.Now()
	id := models.KeyPackageIdentity(alice.DeviceID)
	valid := func() []byte { return mlstest.KeyPackage(mlstest.Options{Identity: id}).Bytes }
	mutate := func(f func(b []byte) []byte) []byte { return f(valid()) }
	x509 := readFixture(t, "kp_x509_s1.bin")

	tests := []struct {
		name string
		pkg  []byte
		code string
	}{
		{"identity of another device", mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(bob.DeviceID)}).Bytes, "key_package_identity"},
		{"bare device id as identity", mlstest.KeyPackage(mlstest.Options{Identity: alice.DeviceID}).Bytes, "key_package_identity"},
		{"identity with a suffix", mlstest.KeyPackage(mlstest.Options{Identity: id + " "}).Bytes, "key_package_identity"},
		{"flipped signature byte", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }), "key_package_signature"},
		{"expired lifetime", mlstest.KeyPackage(mlstest.Options{Identity: id, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}).Bytes, "key_package_expired"},
		{"not yet valid", mlstest.KeyPackage(mlstest.Options{Identity: id, NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}).Bytes, "key_package_not_yet_valid"},
		{"lifetime too long", mlstest.KeyPackage(mlstest.Options{Identity: id, NotAfter: now.Add(91 * 24 * time.Hour)}).Bytes, "key_package_lifetime"},
		{"wrong MLSMessage version", mutate(func(b []byte) []byte { b[1] = 2; return b }), "key_package_version"},
		{"wrong KeyPackage version", mutate(func(b []byte) []byte { b[5] = 2; return b }), "key_package_version"},
		{"trailing bytes", mutate(func(b []byte) []byte { return append(b, 0) }), "key_package_trailing_data"},
		{"truncated", mutate(func(b []byte) []byte { return b[:len(b)-10] }), "key_package_malformed"},
		{"wrong wire format", mutate(func(b []byte) []byte { b[3] = 1; return b }), "key_package_wire_format"},
		{"Ed448 suite", mutate(func(b []byte) []byte { b[7] = 4; return b }), "key_package_cipher_suite"},
		{"unknown suite", mutate(func(b []byte) []byte { b[7] = 0x42; return b }), "key_package_cipher_suite"},
		{"X.509 credential", x509, "key_package_credential"},
		{"too large", make([]byte, store.MaxKeyPackageBytes+1), "key_package_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The forged package sits between two valid ones: nothing of the
			// batch may be stored.
			st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{valid(), tt.pkg, valid()}, "last_resort_index": 2})
			if st != http.StatusUnprocessableEntity || p.Code != tt.code || p.Index == nil || *p.Index != 1 {
				t.Fatalf("upload = %d %+v, want 422 %s at index 1", st, p, tt.code)
			}
			if n := storedKeyPackages(t, s); n != 0 {
				t.Fatalf("%d key packages stored after a rejected batch", n)
			}
		})
	}

	t.Run("duplicate in batch", func(t *testing.T) {
		b := valid()
		st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{valid(), b, b}})
		if st != http.StatusUnprocessableEntity || p.Code != "key_package_duplicate" || *p.Index != 2 {
			t.Fatalf("upload = %d %+v", st, p)
		}
	})
	t.Run("last_resort_index out of range", func(t *testing.T) {
		st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{valid()}, "last_resort_index": 1})
		if st != http.StatusUnprocessableEntity || p.Code != "last_resort_index_out_of_range" {
			t.Fatalf("upload = %d %+v", st, p)
		}
	})
	t.Run("more than 100", func(t *testing.T) {
		pkgs := make([][]byte, 101)
		for i := range pkgs {
			pkgs[i] = []byte{0}
		}
		if st, _ := upload(t, s, alice, map[string]any{"key_packages": pkgs}); st != http.StatusUnprocessableEntity {
			t.Fatalf("upload of 101 = %d", st)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		r := s.Do(t, "POST", "/v1/key-packages", "", map[string]any{"key_packages": [][]byte{valid()}})
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("upload without token = %d", r.StatusCode)
		}
	})
	if n := storedKeyPackages(t, s); n != 0 {
		t.Fatalf("%d key packages stored", n)
	}

	// A stored package cannot be uploaded again, nor one already claimed.
	b := valid()
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{b}}); st != http.StatusCreated {
		t.Fatalf("upload: %d %+v", st, p)
	}
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{valid(), b}}); st != http.StatusUnprocessableEntity || p.Code != "key_package_duplicate" || *p.Index != 1 {
		t.Fatalf("re-upload = %d %+v", st, p)
	}
	if st, _, _ := claim(t, s, bob, "alice", 1); st != http.StatusOK {
		t.Fatal("claim failed")
	}
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{b}}); st != http.StatusUnprocessableEntity || p.Code != "key_package_duplicate" {
		t.Fatalf("upload of a claimed package = %d %+v", st, p)
	}
	if n := storedKeyPackages(t, s); n != 0 {
		t.Fatalf("%d key packages stored", n)
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyPackageFromTSMLS uploads a key package made by ts-mls (the client
// library) for a device whose id it names, and claims it back.
func TestKeyPackageFromTSMLS(t *testing.T) {
	// The fixture's lifetime is 2023-11-14 to 2030-03-17: allow it.
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.KeyPackageMaxLifetime = 7 * 365 * 24 * time.Hour })
	if now := s.Clock.Now().Unix(); now < 1_700_000_000 || now > 1_900_000_000 {
		t.Skip("the fixture's lifetime does not cover today")
	}
	var index struct {
		Fixtures []struct {
			Name     string `json:"name"`
			Ref      string `json:"ref"`
			Identity string `json:"identity"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(readFixture(t, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	var ref []byte
	const prefix = "sovereign:device:"
	var deviceID string
	for _, f := range index.Fixtures {
		if f.Name == "kp_alice_s1" {
			ref, _ = hex.DecodeString(f.Ref)
			deviceID = f.Identity[len(prefix):]
		}
	}
	if deviceID != "3f2c9a1e-7b4d-4e8a-9c21-0d5e6f7a8b90" {
		t.Fatalf("fixture identity: device %q", deviceID)
	}
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	aliceTS := s.SeedDevice(t, alice, deviceID)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	kp := readFixture(t, "kp_alice_s1.bin")

	// Bound to its own device only.
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{kp}}); st != http.StatusUnprocessableEntity || p.Code != "key_package_identity" {
		t.Fatalf("upload from another device = %d %+v", st, p)
	}
	if st, p := upload(t, s, aliceTS, map[string]any{"key_packages": [][]byte{kp}}); st != http.StatusCreated {
		t.Fatalf("upload ts-mls package: %d %+v", st, p)
	}
	st, res, p := claim(t, s, bob, "alice", 1)
	if st != http.StatusOK {
		t.Fatalf("claim: %d %+v", st, p)
	}
	if len(res.KeyPackages) != 1 || res.KeyPackages[0].DeviceID != deviceID || !bytes.Equal(res.KeyPackages[0].KeyPackage, kp) ||
		!bytes.Equal(res.KeyPackages[0].Ref, ref) {
		t.Fatalf("claim = %+v", res)
	}
	if len(res.MissingDevices) != 1 || res.MissingDevices[0] != alice.DeviceID {
		t.Fatalf("missing devices = %v", res.MissingDevices)
	}
}

// TestConcurrentClaimsExhaustToLastResort is the acceptance test: 50
// concurrent claims against a device holding 10 normal packages and a
// last-resort one hand out each normal package exactly once and the
// last-resort package to the rest; the last-resort package stays.
func TestConcurrentClaimsExhaustToLastResort(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) {
		c.Limits.ClaimsPerMinute = 1000
		c.Limits.ClaimsPerTarget = 1000
	})
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	normal, last := s.UploadKeyPackages(t, alice, 10, true)
	claimers := make([]testutil.Account, 10)
	for i := range claimers {
		claimers[i] = s.SeedAccount(t, "claimer"+strconv.Itoa(i), models.RoleMember)
	}

	const n = 50
	results := make([]claimResult, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], results[i], _ = claim(t, s, claimers[i%len(claimers)], "alice", 1)
		}()
	}
	close(start)
	wg.Wait()

	want := map[string]bool{}
	for _, b := range normal {
		want[string(b.Ref)] = true
	}
	seen := map[string]int{}
	lastResort := 0
	for i, r := range results {
		if statuses[i] != http.StatusOK || len(r.KeyPackages) != 1 {
			t.Fatalf("claim %d: %d %+v", i, statuses[i], r)
		}
		kp := r.KeyPackages[0]
		switch {
		case kp.LastResort:
			if !bytes.Equal(kp.Ref, last.Ref) || !bytes.Equal(kp.KeyPackage, last.Bytes) {
				t.Fatalf("claim %d: last-resort package %x is not the uploaded one", i, kp.Ref)
			}
			lastResort++
		case want[string(kp.Ref)]:
			seen[string(kp.Ref)]++
		default:
			t.Fatalf("claim %d: unknown package %x", i, kp.Ref)
		}
	}
	if len(seen) != 10 || lastResort != n-10 {
		t.Fatalf("%d distinct normal packages, %d last-resort; want 10 and %d", len(seen), lastResort, n-10)
	}
	for ref, k := range seen {
		if k != 1 {
			t.Fatalf("package %x handed out %d times", ref, k)
		}
	}
	c := getCounts(t, s, alice)
	if len(c.Suites) != 1 || c.Suites[0].Normal != 0 || !c.Suites[0].LastResort {
		t.Fatalf("counts afterwards = %+v", c)
	}
	// Every hand-out is recorded: 10 normal refs, and the last-resort ref
	// once per claimer that received it.
	var normalClaims, lrClaims int
	ctx := context.Background()
	if err := s.Store.ReadDB().NewRaw(`SELECT count(*) FROM key_package_claims WHERE ref <> ?`, last.Ref).Scan(ctx, &normalClaims); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.ReadDB().NewRaw(`SELECT count(*) FROM key_package_claims WHERE ref = ?`, last.Ref).Scan(ctx, &lrClaims); err != nil {
		t.Fatal(err)
	}
	claimersOfLR := map[int]bool{}
	for i, r := range results {
		if r.KeyPackages[0].LastResort {
			claimersOfLR[i%len(claimers)] = true
		}
	}
	if normalClaims != 10 || lrClaims != len(claimersOfLR) {
		t.Fatalf("claim records: %d normal, %d last-resort; want 10 and %d", normalClaims, lrClaims, len(claimersOfLR))
	}
}

func TestClaimRules(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	alice2 := s.SeedDevice(t, alice, "")
	alice3 := s.SeedDevice(t, alice, "")
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	s.UploadKeyPackages(t, alice, 2, false)
	s.UploadKeyPackages(t, alice2, 2, false)
	s.UploadKeyPackages(t, alice3, 2, false)

	// Alice's first device claims her own user: her other devices only.
	_, res, _ := claim(t, s, alice, "alice", 1)
	devs := map[string]bool{}
	for _, kp := range res.KeyPackages {
		devs[kp.DeviceID] = true
	}
	if len(res.KeyPackages) != 2 || !devs[alice2.DeviceID] || !devs[alice3.DeviceID] || devs[alice.DeviceID] {
		t.Fatalf("own-user claim = %+v", res)
	}

	// A revoked device is skipped (and its session no longer works).
	revoke := func(q string, args ...any) {
		t.Helper()
		if err := s.Store.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
			_, err := tx.NewRaw(q, args...).Exec(ctx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	revoke(`UPDATE devices SET revoked_at = ? WHERE id = ?`, models.Millis(s.Clock.Now()), alice3.DeviceID)
	_, res, _ = claim(t, s, bob, "alice", 1)
	if len(res.KeyPackages) != 2 {
		t.Fatalf("claim with a revoked device = %+v", res)
	}
	for _, kp := range res.KeyPackages {
		if kp.DeviceID == alice3.DeviceID {
			t.Fatal("a revoked device's package was handed out")
		}
	}

	for _, tt := range []struct {
		name, user string
		suite      int
		status     int
		code       string
	}{
		{"unknown username", "nobody", 1, http.StatusNotFound, "user_not_found"},
		{"unknown id", "0192b6a0-0000-7000-8000-000000000001", 1, http.StatusNotFound, "user_not_found"},
		{"Ed448 suite", "alice", 4, http.StatusUnprocessableEntity, "unsupported_cipher_suite"},
		{"suite out of range", "alice", 8, http.StatusUnprocessableEntity, "validation_failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, _, p := claim(t, s, bob, tt.user, tt.suite)
			if st != tt.status || p.Code != tt.code {
				t.Fatalf("claim = %d %+v, want %d %s", st, p, tt.status, tt.code)
			}
		})
	}

	revoke(`UPDATE users SET disabled_at = ? WHERE id = ?`, models.Millis(s.Clock.Now()), alice.UserID)
	for _, u := range []string{"alice", alice.UserID} {
		if st, _, p := claim(t, s, bob, u, 1); st != http.StatusNotFound || p.Code != "user_not_found" {
			t.Fatalf("claim of a disabled user by %q = %d %+v", u, st, p)
		}
	}
}

func TestClaimRateLimits(t *testing.T) {
	t.Run("per claiming user", func(t *testing.T) {
		s := testutil.NewServer(t, func(c *config.Config) { c.Limits.ClaimsPerMinute = 2 })
		alice := s.SeedAccount(t, "alice", models.RoleMember)
		bob := s.SeedAccount(t, "bob", models.RoleMember)
		carol := s.SeedAccount(t, "carol", models.RoleMember)
		s.UploadKeyPackages(t, alice, 5, false)
		for range 2 {
			if st, _, p := claim(t, s, bob, "alice", 1); st != http.StatusOK {
				t.Fatalf("claim: %d %+v", st, p)
			}
		}
		r := s.Do(t, "POST", "/v1/users/alice/key-packages/claim", bob.Token, map[string]any{"cipher_suite": 1})
		var p problem
		r.JSON(t, &p)
		if r.StatusCode != http.StatusTooManyRequests || p.Code != "claim_rate_limited" || r.Header.Get("Retry-After") == "" || p.RetryAfter < 1 {
			t.Fatalf("third claim = %d %+v Retry-After %q", r.StatusCode, p, r.Header.Get("Retry-After"))
		}
		// Another device of the same user has no budget of its own.
		if st, _, p := claim(t, s, s.SeedDevice(t, bob, ""), "alice", 1); st != http.StatusTooManyRequests || p.Code != "claim_rate_limited" {
			t.Fatalf("claim from bob's second device = %d %+v", st, p)
		}
		// Another claimer is not affected; the limited one recovers.
		if st, _, _ := claim(t, s, carol, "alice", 1); st != http.StatusOK {
			t.Fatalf("other claimer: %d", st)
		}
		s.Clock.Advance(time.Minute)
		if st, _, _ := claim(t, s, bob, "alice", 1); st != http.StatusOK {
			t.Fatalf("claim after a minute: %d", st)
		}
		if c := getCounts(t, s, alice); c.Suites[0].Normal != 1 {
			t.Fatalf("rate-limited claims took packages: %+v", c)
		}
	})
	t.Run("per claiming user against a target", func(t *testing.T) {
		s := testutil.NewServer(t, func(c *config.Config) { c.Limits.ClaimsPerTarget = 3 })
		alice := s.SeedAccount(t, "alice", models.RoleMember)
		dave := s.SeedAccount(t, "dave", models.RoleMember)
		s.UploadKeyPackages(t, alice, 6, false)
		s.UploadKeyPackages(t, dave, 1, false)
		// One claiming user's devices share its budget against alice.
		claimer := s.SeedAccount(t, "claimer", models.RoleMember)
		for i := range 3 {
			d := s.SeedDevice(t, claimer, "")
			if st, _, _ := claim(t, s, d, "alice", 1); st != http.StatusOK {
				t.Fatalf("claim %d: %d", i, st)
			}
		}
		st, _, p := claim(t, s, claimer, "alice", 1)
		if st != http.StatusTooManyRequests || p.Code != "claim_target_rate_limited" {
			t.Fatalf("fourth claim against alice from the same user = %d %+v", st, p)
		}
		if st, _, _ := claim(t, s, claimer, "dave", 1); st != http.StatusOK {
			t.Fatalf("claim against another user: %d", st)
		}
		// Another claimer has its own budget against alice.
		eve := s.SeedAccount(t, "eve", models.RoleMember)
		if st, _, p := claim(t, s, eve, "alice", 1); st != http.StatusOK {
			t.Fatalf("another claimer against alice = %d %+v", st, p)
		}
		if c := getCounts(t, s, alice); c.Suites[0].Normal != 2 {
			t.Fatalf("counts = %+v", c)
		}
	})
}

func TestLastResortReplacedAndQuota(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.Limits.KeyPackagesPerDevice = 3 })
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	_, first := s.UploadKeyPackages(t, alice, 0, true)
	_, second := s.UploadKeyPackages(t, alice, 0, true)
	if c := getCounts(t, s, alice); len(c.Suites) != 1 || c.Suites[0].Normal != 0 || !c.Suites[0].LastResort || storedKeyPackages(t, s) != 1 {
		t.Fatalf("counts after two last-resort uploads = %+v", c)
	}
	_, res, _ := claim(t, s, bob, "alice", 1)
	if !bytes.Equal(res.KeyPackages[0].Ref, second.Ref) || bytes.Equal(second.Ref, first.Ref) {
		t.Fatal("the newer last-resort package did not replace the older one")
	}

	s.UploadKeyPackages(t, alice, 3, true) // at the limit; last resort does not count
	st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{s.KeyPackagesFor(alice.DeviceID, 1)[0].Bytes}})
	if st != http.StatusInsufficientStorage || p.Code != "key_package_quota" {
		t.Fatalf("upload beyond the quota = %d %+v", st, p)
	}
}

func TestKeyPackagesExpire(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	now := s.Clock.Now()
	short := mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(alice.DeviceID), NotAfter: now.Add(2 * time.Hour)})
	long := s.KeyPackagesFor(alice.DeviceID, 1)[0]
	// Short first: it is older and would be picked first.
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{short.Bytes}}); st != http.StatusCreated {
		t.Fatalf("upload: %d %+v", st, p)
	}
	s.Clock.Advance(time.Second)
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{long.Bytes}}); st != http.StatusCreated {
		t.Fatalf("upload: %d %+v", st, p)
	}
	s.Clock.Advance(3 * time.Hour)
	if c := getCounts(t, s, alice); c.Suites[0].Normal != 1 {
		t.Fatalf("expired package counted: %+v", c)
	}
	_, res, _ := claim(t, s, bob, "alice", 1)
	if len(res.KeyPackages) != 1 || !bytes.Equal(res.KeyPackages[0].Ref, long.Ref) {
		t.Fatal("an expired package was handed out")
	}
}

// TestCleanupJob runs the server's own cleanup runner with the server's
// injected clock.
func TestCleanupJob(t *testing.T) {
	s := testutil.NewServer(t)
	want := []string{"expired_key_packages", "key_package_expiry_notices", "revoked_device_key_packages", "old_key_package_claims", "ended_sessions",
		"expired_events", "expired_idempotency_keys", "expired_ceremonies", "dead_invites", "acked_events", "old_audit_ips", "old_audit_entries",
		"expired_attachments", "attachment_files"}
	if got := s.App.Maintenance().Tasks(); len(got) != len(want) {
		t.Fatalf("cleanup tasks = %v, want %v", got, want)
	}
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	now := s.Clock.Now()
	short := mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(alice.DeviceID), NotAfter: now.Add(time.Hour)})
	if st, p := upload(t, s, alice, map[string]any{"key_packages": [][]byte{short.Bytes}}); st != http.StatusCreated {
		t.Fatalf("upload: %d %+v", st, p)
	}
	s.UploadKeyPackages(t, alice, 2, false)

	for _, r := range s.App.Maintenance().RunOnce(context.Background()) {
		// The package expiring within the hour is announced (one notice).
		if r.Err != nil || r.Removed != 0 && !(r.Name == "key_package_expiry_notices" && r.Removed == 1) {
			t.Fatalf("first pass: %+v", r)
		}
	}
	s.Clock.Advance(2 * time.Hour)
	res := s.App.Maintenance().RunOnce(context.Background())
	if res[0].Name != "expired_key_packages" || res[0].Removed != 1 || res[0].Err != nil {
		t.Fatalf("second pass: %+v", res)
	}
	if n := storedKeyPackages(t, s); n != 2 {
		t.Fatalf("%d packages left, want 2", n)
	}
}
