package realtime_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

func ev(seq int64) *models.Event { return &models.Event{Seq: seq, Payload: []byte("x")} }

func TestPublishWakesOnlyTheAddressedDevices(t *testing.T) {
	h := realtime.New(realtime.Options{})
	a := h.Subscribe("dev-a", "s1")
	b := h.Subscribe("dev-b", "s2")
	h.Publish(ev(1), []string{"dev-a"})
	select {
	case <-a.Wake():
	default:
		t.Fatal("subscriber of dev-a not woken")
	}
	select {
	case <-b.Wake():
		t.Fatal("subscriber of dev-b woken by dev-a's event")
	default:
	}
	got, lagged := a.Take(nil, 10)
	if lagged || len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("Take = %v lagged=%v", got, lagged)
	}
}

func TestSlowSubscriberLagsWithBoundedMemoryAndNeverBlocksPublish(t *testing.T) {
	h := realtime.New(realtime.Options{Buffer: 8})
	slow := h.Subscribe("dev", "s1")
	fast := h.Subscribe("dev", "s2")
	start := time.Now()
	var fastGot int
	const n = 30_000
	for i := int64(1); i <= n; i++ {
		h.Publish(ev(i), []string{"dev"})
		if st := h.Stats(); i%5_000 == 0 && st.MaxBuffered > 8 {
			t.Fatalf("buffer grew to %d", st.MaxBuffered)
		}
		evs, _ := fast.Take(nil, 8)
		fastGot += len(evs)
	}
	// A publish that blocked on the stuck subscriber would never finish: the
	// bound only has to be finite, and generous for a loaded race build.
	d := time.Since(start)
	t.Logf("%d publishes with a stuck subscriber in %v", n, d)
	if d > 60*time.Second {
		t.Fatalf("publishing with a stuck subscriber took %v", d)
	}
	if fastGot != n {
		t.Fatalf("fast subscriber got %d of %d", fastGot, n)
	}
	got, lagged := slow.Take(nil, 100)
	if !lagged {
		t.Fatal("overflowed subscriber not marked lagged")
	}
	if len(got) > 8 {
		t.Fatalf("lagged subscriber holds %d events", len(got))
	}
	if st := h.Stats(); st.Lags == 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSessionsEndedEndsOnlyThoseSessions(t *testing.T) {
	h := realtime.New(realtime.Options{})
	a := h.Subscribe("dev", "s1")
	a2 := h.Subscribe("dev", "s1")
	b := h.Subscribe("dev", "s2")
	h.SessionsEnded([]string{"s1"})
	for _, s := range []*realtime.Subscription{a, a2} {
		select {
		case <-s.Done():
		default:
			t.Fatal("subscription of ended session still open")
		}
		if !errors.Is(s.Err(), realtime.ErrSessionEnded) {
			t.Fatalf("err = %v", s.Err())
		}
	}
	if b.Err() != nil {
		t.Fatal("other session ended")
	}
	if st := h.Stats(); st.Subscriptions != 1 {
		t.Fatalf("subscriptions = %d, want 1", st.Subscriptions)
	}
	h.Close()
	if !errors.Is(b.Err(), realtime.ErrHubClosed) {
		t.Fatalf("after Close err = %v", b.Err())
	}
	if late := h.Subscribe("dev", "s3"); !errors.Is(late.Err(), realtime.ErrHubClosed) {
		t.Fatal("subscription after Close is open")
	}
}

func TestStreamLimiter(t *testing.T) {
	l := realtime.NewStreamLimiter(2, 3)
	ip1 := mustAddr("192.0.2.1")
	ip2 := mustAddr("192.0.2.2")
	r1, err1 := l.Acquire(ip1)
	_, err2 := l.Acquire(ip1)
	_, err3 := l.Acquire(ip1)
	if err1 != nil || err2 != nil || !models.IsCode(err3, models.ERATELIMIT) {
		t.Fatalf("per-IP: %v %v %v", err1, err2, err3)
	}
	if _, err := l.Acquire(ip2); err != nil {
		t.Fatal(err)
	}
	var de *models.Error
	if _, err := l.Acquire(mustAddr("192.0.2.3")); !errors.As(err, &de) || de.RetryAfter <= 0 {
		t.Fatalf("total: %v", err)
	}
	r1()
	r1() // idempotent
	if _, err := l.Acquire(ip1); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if l.Open() != 3 {
		t.Fatalf("open = %d", l.Open())
	}
}

// openStore opens a real store whose committed events go to a new hub.
func openStore(t testing.TB, buffer int) (*store.Store, *realtime.Hub) {
	t.Helper()
	h := realtime.New(realtime.Options{Buffer: buffer})
	s, err := store.Open(context.Background(), store.Options{
		Path: filepath.Join(t.TempDir(), "data", "sovereign.db"), Publisher: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); _ = s.Close() })
	return s, h
}

func seedDevices(t testing.TB, s *store.Store, n int) []string {
	t.Helper()
	var ids []string
	err := s.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		for i := range n {
			name := string(rune('a'+i)) + "user"
			u, err := store.InsertUser(ctx, tx, name, name, models.RoleMember)
			if err != nil {
				return err
			}
			d, err := store.InsertDevice(ctx, tx, u, name)
			if err != nil {
				return err
			}
			ids = append(ids, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestReaderNoGapNoDuplicateUnderConcurrentPublish: 5 publishers × 200
// messages while a subscriber disconnects and resumes from its cursor at
// random moments, with a tiny buffer so it also lags and falls back to the
// store: it sees every seq exactly once, in order.
func TestReaderNoGapNoDuplicateUnderConcurrentPublish(t *testing.T) {
	for _, buffer := range []int{2, 64} {
		t.Run("buffer", func(t *testing.T) {
			ctx := context.Background()
			s, h := openStore(t, buffer)
			devs := seedDevices(t, s, 6)
			reader := devs[5]
			f := testutil.Feed{St: s}
			g := []byte("group")
			if err := f.CreateGroup(ctx, g, devs...); err != nil {
				t.Fatal(err)
			}
			const publishers, each = 5, 200
			var wg sync.WaitGroup
			errs := make(chan error, publishers)
			for p := range publishers {
				wg.Go(func() {
					for range each {
						if _, err := f.Send(ctx, g, devs[p], models.KindApplication, []byte("m")); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()

			rng := rand.New(rand.NewPCG(1, uint64(buffer)))
			var got []int64
			cursor := int64(0)
			for len(got) < publishers*each {
				sub := h.Subscribe(reader, "s")
				r := realtime.NewReader(sub, s, cursor)
				batches := 1 + rng.IntN(5)
				for range batches {
					timer := time.NewTimer(2 * time.Second)
					evs, err := r.Next(ctx, 1+rng.IntN(50), timer.C)
					timer.Stop()
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range evs {
						got = append(got, e.Seq)
					}
					if len(evs) == 0 && len(got) < publishers*each {
						select {
						case <-done:
							// Nothing new after the publishers finished: a gap.
							t.Fatalf("stalled at %d events after cursor %d", len(got), r.Cursor())
						default:
						}
					}
				}
				cursor = r.Cursor()
				r.Close()
			}
			<-done
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			all, _, err := s.Feed(ctx, reader, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(all) {
				t.Fatalf("got %d events, feed has %d", len(got), len(all))
			}
			for i := range got {
				if got[i] != all[i].Seq {
					t.Fatalf("event %d: seq %d, want %d (duplicate or gap)", i, got[i], all[i].Seq)
				}
			}
		})
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPublishedEventIsSharedAndEncodedOnce(t *testing.T) {
	h := realtime.New(realtime.Options{})
	var subs []*realtime.Subscription
	for i := range 10 {
		subs = append(subs, h.Subscribe("dev", strconv.Itoa(i)))
	}
	h.Publish(ev(1), []string{"dev"})
	var calls atomic.Int32
	encode := func(e *models.Event) []byte { calls.Add(1); return []byte(strconv.FormatInt(e.Seq, 10)) }
	var items []*realtime.Item
	for _, s := range subs {
		got, _ := s.Take(nil, 1)
		items = append(items, got...)
	}
	for _, it := range items {
		if it != items[0] {
			t.Fatal("subscribers got different items for one publish")
		}
		if string(it.Wire(encode)) != "1" {
			t.Fatal("wrong encoding")
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("encoded %d times for 10 subscribers", calls.Load())
	}
	// Concurrent first uses agree on one encoding.
	h.Publish(ev(2), []string{"dev"})
	var wg sync.WaitGroup
	results := make([][]byte, len(subs))
	for i, s := range subs {
		wg.Go(func() {
			got, _ := s.Take(nil, 1)
			results[i] = got[0].Wire(encode)
		})
	}
	wg.Wait()
	for _, r := range results {
		if &r[0] != &results[0][0] {
			t.Fatal("streams hold different encodings of one event")
		}
	}
}
