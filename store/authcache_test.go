package store

import (
	"context"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// seedSession creates a user, a device and a session and returns the
// session's token hash and ids.
func seedSession(t *testing.T, s *Store, name string, ttl time.Duration) (hash []byte, userID, deviceID, sessionID string) {
	t.Helper()
	_, hash = models.NewToken()
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		var err error
		if userID, err = InsertUser(ctx, tx, name, name, models.RoleMember); err != nil {
			return err
		}
		if deviceID, err = InsertDevice(ctx, tx, userID, "phone"); err != nil {
			return err
		}
		sessionID, err = InsertSession(ctx, tx, userID, deviceID, hash, ttl)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hash, userID, deviceID, sessionID
}

func TestAuthCacheAnswersUntilAWriteCouldChangeIt(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	s, err := Open(ctx, Options{Database: testdb.URL(t), Path: t.TempDir() + "/data/s.db", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	hash, userID, _, sessionID := seedSession(t, s, "alice", time.Hour)
	other, _, _, _ := seedSession(t, s, "bob", time.Hour)

	mustAuth := func(h []byte) {
		t.Helper()
		if _, err := s.Authenticate(ctx, h); err != nil {
			t.Fatalf("authenticate: %v", err)
		}
	}
	counts := func() (uint64, uint64) { return s.auth.hits.Load(), s.auth.misses.Load() }

	mustAuth(hash)
	h0, m0 := counts()
	mustAuth(hash)
	if h, m := counts(); h != h0+1 || m != m0 {
		t.Fatalf("second authentication: hits %d→%d misses %d→%d; want a hit", h0, h, m0, m)
	}

	// A use case that declares KeepsAuth leaves the cache valid.
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error { tx.KeepsAuth(); return nil }); err != nil {
		t.Fatal(err)
	}
	mustAuth(hash)
	if h, _ := counts(); h != h0+2 {
		t.Fatalf("after a KeepsAuth write: want a hit")
	}

	// Touching the session (once a minute per session) keeps it cached and
	// updates the cached last-seen time.
	clock.Add(2 * time.Minute.Milliseconds())
	if err := s.TouchSession(ctx, hash, sessionID, ""); err != nil {
		t.Fatal(err)
	}
	h1, _ := counts()
	p, err := s.Authenticate(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := counts(); h != h1+1 || !p.LastSeenAt.Equal(time.UnixMilli(clock.Load())) {
		t.Fatalf("after a touch: hit %v, last seen %v, want %v", h == h1+1, p.LastSeenAt, time.UnixMilli(clock.Load()))
	}
	clock.Add(-2 * time.Minute.Milliseconds())

	// Any other use case invalidates it, even one that changes nothing.
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	_, m1 := counts()
	mustAuth(hash)
	if _, m := counts(); m != m1+1 {
		t.Fatalf("after a plain write: want a miss")
	}

	// Expiry is checked on every use, cached or not.
	mustAuth(hash) // cached
	clock.Add(time.Hour.Milliseconds())
	if _, err := s.Authenticate(ctx, hash); !models.IsCode(err, models.EUNAUTHORIZED) {
		t.Fatalf("expired session from the cache: %v", err)
	}
	clock.Add(-time.Hour.Milliseconds())

	// Ending the session: rejected as soon as EndSession returns.
	mustAuth(hash)
	if err := s.EndSession(ctx, userID, sessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, hash); !models.IsCode(err, models.EUNAUTHORIZED) {
		t.Fatalf("ended session still authenticates: %v", err)
	}
	mustAuth(other)

	// Invalid sessions are never cached: each attempt reads the database.
	_, m2 := counts()
	for range 3 {
		if _, err := s.Authenticate(ctx, hash); err == nil {
			t.Fatal("ended session authenticated")
		}
	}
	if _, m := counts(); m != m2+3 {
		t.Fatalf("invalid session: %d misses, want 3", m-m2)
	}
}

// TestAuthCacheNeverOutlivesARevocation races authentications against a
// revocation: once the revoking call has returned, no authentication that
// starts afterwards may succeed.
func TestAuthCacheNeverOutlivesARevocation(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	for round := range 20 {
		hash, userID, deviceID, _ := seedSession(t, s, "user"+string(rune('a'+round)), time.Hour)
		stop := make(chan struct{})
		var revoked atomic.Bool
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				for {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					after := revoked.Load()
					_, err := s.Authenticate(ctx, hash)
					if after && err == nil {
						errs <- errFromString("authenticated after the revocation returned")
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := s.RevokeDevice(ctx, userID, deviceID); err != nil {
			t.Fatal(err)
		}
		revoked.Store(true)
		time.Sleep(2 * time.Millisecond)
		close(stop)
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

type errFromString string

func (e errFromString) Error() string { return string(e) }

// BenchmarkAuthenticateCacheMiss measures authentication when the cache was
// just invalidated (after any write that could change a session): the
// prepared query on the read pool. BenchmarkAuthenticate measures hits.
func BenchmarkAuthenticateCacheMiss(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: b.TempDir() + "/data/s.db"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, hash := models.NewToken()
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		uid, err := InsertUser(ctx, tx, "bench", "Bench", models.RoleMember)
		if err != nil {
			return err
		}
		did, err := InsertDevice(ctx, tx, uid, "device")
		if err != nil {
			return err
		}
		_, err = InsertSession(ctx, tx, uid, did, hash, time.Hour)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.auth.invalidate()
		if _, err := s.Authenticate(ctx, hash); err != nil {
			b.Fatal(err)
		}
	}
	if h := s.auth.hits.Load(); h != 0 {
		b.Fatalf("%d cache hits, want none", h)
	}
}
