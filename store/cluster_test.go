package store

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestPostgresClusterWakesAndRevokes: two instances on one database, each
// with its own hub. Events committed on A reach a stream on B, in order and
// without a gap, also when B commits events of its own in between; a
// session revoked on A is refused on B and its stream on B ends at once.
func TestPostgresClusterWakesAndRevokes(t *testing.T) {
	url := testdb.Fresh(t)
	ctx := context.Background()
	hubA, hubB := realtime.New(realtime.Options{}), realtime.New(realtime.Options{})
	open := func(h *realtime.Hub) *Store {
		s, err := Open(ctx, Options{Database: url, Publisher: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(hubA), open(hubB)

	var userID, dev, sid string
	token := make([]byte, 32)
	_, _ = rand.Read(token)
	if err := a.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := InsertUser(ctx, tx, "alice", "Alice", models.RoleMember)
		if err != nil {
			return err
		}
		userID = u
		if dev, err = InsertDevice(ctx, tx, u, "phone"); err != nil {
			return err
		}
		sid, err = InsertSession(ctx, tx, u, dev, token, time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = userID
	notice := func(s *Store) int64 {
		t.Helper()
		var seq int64
		if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			ev := &models.Event{Kind: models.KindNotice, RecipientDeviceID: dev, Payload: []byte(`{}`)}
			if err := insertEvent(ctx, tx, ev); err != nil {
				return err
			}
			seq = ev.Seq
			publish(tx, ev, []string{dev})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return seq
	}

	sub := hubB.Subscribe(dev, sid)
	r := realtime.NewReader(sub, b, 0)
	var want []int64
	for i := range 30 {
		if i%3 == 2 {
			want = append(want, notice(b)) // B's own, between A's
		} else {
			want = append(want, notice(a))
		}
	}
	var got []int64
	deadline := time.After(30 * time.Second)
	for len(got) < len(want) {
		items, err := r.Next(ctx, 100, time.After(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			got = append(got, it.Seq)
		}
		select {
		case <-deadline:
			t.Fatalf("B's stream read %v, want %v", got, want)
		default:
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("B's stream read %v, want %v", got, want)
		}
	}

	// Revocation on A: B refuses the token and closes the stream.
	if _, err := b.Authenticate(ctx, token); err != nil {
		t.Fatalf("authenticate on B before revocation: %v", err)
	}
	start := time.Now()
	if err := a.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := endSessions(ctx, tx, a.pub, "id = ?", sid)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Done():
		t.Logf("B's stream closed %v after the revocation on A was acknowledged", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("B's stream still open 10 s after the revocation on A")
	}
	if time.Since(start) > time.Second {
		t.Logf("slower than 1 s (machine load?): %v", time.Since(start))
	}
	waitFor(t, func() bool { _, err := b.Authenticate(ctx, token); return err != nil }, "B refuses the revoked token")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out: " + what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPostgresFirstAdminInviteOnce: instances starting together on a new
// database make one first-admin invite between them, not one each.
func TestPostgresFirstAdminInviteOnce(t *testing.T) {
	st := openInstances(t, 3, false)
	codes := make(chan string, len(st))
	errs := make(chan error, len(st))
	for _, s := range st {
		go func() {
			b, err := s.EnsureAdminInvite(context.Background(), time.Hour)
			codes <- b.Code
			errs <- err
		}()
	}
	made := 0
	for range st {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if <-codes != "" {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d first-admin invites made, want 1", made)
	}
}

// BenchmarkEventWrites stores one 512-byte event per use case from 32
// concurrent writers: SQLite, PostgreSQL with one instance, and PostgreSQL
// with two instances sharing the writers (the batch lock serialises them).
func BenchmarkEventWrites(b *testing.B) {
	run := func(b *testing.B, stores []*Store) {
		dev := seedDevice(b, stores[0], "bench")
		payload := make([]byte, 512)
		var next atomicCounter
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			s := stores[int(next.add())%len(stores)]
			for pb.Next() {
				if err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
					return insertEvent(ctx, tx, &models.Event{Kind: models.KindNotice, RecipientDeviceID: dev, Payload: payload})
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		var batches, uses uint64
		for _, s := range stores {
			st := s.WriterStats()
			batches, uses = batches+st.Batches, uses+st.UseCases
		}
		b.ReportMetric(float64(uses)/float64(max(batches, 1)), "usecases/batch")
	}
	b.Run("sqlite", func(b *testing.B) {
		s, err := Open(context.Background(), Options{Path: b.TempDir() + "/d/db"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, []*Store{s})
	})
	for _, n := range []int{1, 2} {
		b.Run("postgres-"+string(rune('0'+n)), func(b *testing.B) {
			url := testdb.Fresh(b)
			var stores []*Store
			for range n {
				s, err := Open(context.Background(), Options{Database: url})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				stores = append(stores, s)
			}
			run(b, stores)
		})
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int64
}

func (c *atomicCounter) add() int64 { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }
