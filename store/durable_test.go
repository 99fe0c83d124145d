package store_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// openDurable opens a SQLite store at the default synchronous=FULL (the
// writer commits at NORMAL and the syncer makes batches durable) with the
// real-time hub as its publisher.
func openDurable(t *testing.T, synchronous string) (*store.Store, *realtime.Hub) {
	t.Helper()
	if testdb.Postgres() {
		t.Skip("the durable watermark is SQLite's: a PostgreSQL COMMIT is durable when it returns")
	}
	hub := realtime.New(realtime.Options{})
	t.Cleanup(hub.Close)
	s, err := store.Open(context.Background(), store.Options{
		Path: filepath.Join(t.TempDir(), "data", "sovereign.db"), Publisher: hub, Synchronous: synchronous,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, hub
}

func maxCommittedSeq(t *testing.T, s *store.Store) int64 {
	t.Helper()
	var seq int64
	if err := s.ReadDB().NewRaw(`SELECT coalesce(max(seq), 0) FROM events`).Scan(context.Background(), &seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// While a batch is committed but its sync has not finished, no reader API
// returns its event, no subscriber receives it and its caller has no
// answer; the writer meanwhile runs the next use case. Once the sync
// finishes, everything appears.
func TestNoReaderSeesEventAboveDurableWatermark(t *testing.T) {
	s, hub := openDurable(t, "")
	ctx := context.Background()
	ids := devices(t, s, "alice", "bob")
	alice, bob := ids[0], ids[1]
	f := testutil.Feed{St: s}
	group := []byte("durable-group")
	if err := f.CreateGroup(ctx, group, alice, bob); err != nil {
		t.Fatal(err)
	}
	first, err := f.Send(ctx, group, alice, models.KindApplication, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.DurableSeq(); got != first.Seq {
		t.Fatalf("watermark %d after an answered send, want %d", got, first.Seq)
	}

	// A live reader of bob's feed (what SSE, WebSocket and long-poll run),
	// caught up to the first message.
	rd := realtime.NewReader(hub.Subscribe(bob, "bob-session"), s, 0)
	defer rd.Close()
	if evs, err := rd.TryNext(ctx, 100); err != nil || len(evs) != 1 || evs[0].Event.Seq != first.Seq {
		t.Fatalf("reader before: %v %v", evs, err)
	}

	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // a failing check must not leave Close waiting on the sync
	if !store.SetSyncHook(s, func() error {
		entered <- struct{}{}
		<-release
		return nil
	}) {
		t.Fatal("the store has no syncer at synchronous=FULL")
	}
	type sent struct {
		ev  *models.Event
		err error
	}
	answer := make(chan sent, 1)
	go func() {
		ev, err := f.Send(ctx, group, alice, models.KindApplication, []byte("held"))
		answer <- sent{ev, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the syncer never started syncing the batch")
	}
	// The batch is committed: its event is in the database...
	held := maxCommittedSeq(t, s)
	if held <= first.Seq {
		t.Fatalf("committed head %d, want above %d", held, first.Seq)
	}
	// ...and the writer runs the next use case meanwhile.
	var ran atomic.Bool
	next := make(chan error, 1)
	go func() {
		next <- s.Write(ctx, func(ctx context.Context, tx *store.Tx) error { ran.Store(true); return nil })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !ran.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !ran.Load() {
		t.Fatal("the writer did not run the next use case while the sync was in flight")
	}

	// Nobody sees it.
	if got := s.DurableSeq(); got != first.Seq {
		t.Fatalf("watermark %d while the sync is held, want %d", got, first.Seq)
	}
	if evs, _, err := s.Feed(ctx, bob, first.Seq, 100); err != nil || len(evs) != 0 {
		t.Fatalf("Feed returned %d events above the watermark (err %v)", len(evs), err)
	}
	if evs, _, err := s.GroupHistory(ctx, bob, group, 0, 100); err != nil || len(evs) != 1 {
		t.Fatalf("GroupHistory returned %d events, want only the durable one (err %v)", len(evs), err)
	}
	fresh := realtime.NewReader(hub.Subscribe(bob, "bob-session-2"), s, 0)
	defer fresh.Close()
	if evs, err := fresh.TryNext(ctx, 100); err != nil || len(evs) != 1 || evs[0].Event.Seq != first.Seq {
		t.Fatalf("catch-up of a new stream returned %v (err %v), want only seq %d", evs, err, first.Seq)
	}
	if evs, err := rd.TryNext(ctx, 100); err != nil || len(evs) != 0 {
		t.Fatalf("the live stream received %d events above the watermark (err %v)", len(evs), err)
	}
	select {
	case a := <-answer:
		t.Fatalf("the sender was answered before its batch was durable: %+v", a)
	case err := <-next:
		t.Fatalf("the next use case was answered before the held batch was durable: %v", err)
	case <-time.After(50 * time.Millisecond):
	}

	// The sync finishes: the answer, the watermark and the deliveries come.
	unblock()
	var a sent
	select {
	case a = <-answer:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the sync")
	}
	if a.err != nil || a.ev.Seq != held {
		t.Fatalf("answer %+v, want seq %d", a, held)
	}
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if got := s.DurableSeq(); got < held {
		t.Fatalf("watermark %d after the sync, want >= %d", got, held)
	}
	if evs, _, err := s.Feed(ctx, bob, first.Seq, 100); err != nil || len(evs) != 1 || evs[0].Seq != held {
		t.Fatalf("Feed after the sync: %v (err %v)", evs, err)
	}
	if evs, err := rd.Next(ctx, 100, time.After(5*time.Second)); err != nil || len(evs) != 1 || evs[0].Event.Seq != held {
		t.Fatalf("live stream after the sync: %v (err %v)", evs, err)
	}
}

// A failed sync fails its batch's callers, exposes nothing, and the store
// then refuses every write rather than acknowledge one that is not durable.
func TestFailedSyncFailsCallersAndStopsWrites(t *testing.T) {
	s, _ := openDurable(t, "FULL")
	ctx := context.Background()
	ids := devices(t, s, "alice")
	f := testutil.Feed{St: s}
	group := []byte("failing-group")
	if err := f.CreateGroup(ctx, group, ids[0]); err != nil {
		t.Fatal(err)
	}
	before := s.DurableSeq()
	var syncs atomic.Int32
	store.SetSyncHook(s, func() error { syncs.Add(1); return errors.New("injected EIO") })
	if _, err := f.Send(ctx, group, ids[0], models.KindApplication, []byte("lost")); !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("send with a failing sync: %v, want ErrNotDurable", err)
	}
	if got := s.DurableSeq(); got != before {
		t.Fatalf("watermark moved to %d after a failed sync, want %d", got, before)
	}
	if evs, _, err := s.Feed(ctx, ids[0], 0, 100); err != nil || len(evs) != 0 {
		t.Fatalf("Feed returned %d events after a failed sync (err %v)", len(evs), err)
	}
	err := s.Write(ctx, func(ctx context.Context, tx *store.Tx) error { return nil })
	if !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("write after a failed sync: %v, want ErrNotDurable", err)
	}
	if n := syncs.Load(); n != 1 {
		t.Fatalf("%d syncs attempted, want 1 (no retry after a failure)", n)
	}
	if err := s.Ready(ctx); !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("Ready after a failed sync: %v", err)
	}
}

// --sqlite-synchronous NORMAL is the operator's choice of no sync per
// commit: no syncer and no watermark, as before.
func TestSynchronousNormalHasNoWatermark(t *testing.T) {
	s, _ := openDurable(t, "NORMAL")
	if store.SetSyncHook(s, func() error { return nil }) {
		t.Fatal("a syncer runs at synchronous=NORMAL")
	}
	if got := s.DurableSeq(); got != math.MaxInt64 {
		t.Fatalf("DurableSeq = %d, want no cap", got)
	}
}
