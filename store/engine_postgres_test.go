package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// openInstances opens n stores on one fresh PostgreSQL database, as n
// server instances would.
func openInstances(t *testing.T, n int, noBatchLock bool) []*Store {
	t.Helper()
	url := testdb.Fresh(t)
	if noBatchLock {
		testEngineHook = func(e engine) {
			if pe, ok := e.(*postgresEngine); ok {
				pe.unsafeNoBatchLock = true
			}
		}
		defer func() { testEngineHook = nil }()
	}
	out := make([]*Store, n)
	for i := range out {
		s, err := Open(context.Background(), Options{Database: url})
		if err != nil {
			t.Fatalf("open instance %d: %v", i, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	return out
}

// feedRace has instance A assign a seq and hold its transaction open while
// instance B assigns the next one, with a client reading the device's feed
// by cursor throughout. It returns the seqs the client read and the two
// seqs assigned.
func feedRace(t *testing.T, noBatchLock bool) (read []int64, seqA, seqB int64) {
	st := openInstances(t, 2, noBatchLock)
	a, b := st[0], st[1]
	dev := seedDevice(t, a, "alice")
	ctx := context.Background()
	notice := func(ctx context.Context, tx *Tx) (int64, error) {
		ev := &models.Event{Kind: models.KindNotice, RecipientDeviceID: dev, Payload: []byte(`{}`)}
		err := insertEvent(ctx, tx, ev)
		return ev.Seq, err
	}

	inserted, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := a.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			seqA, err = notice(ctx, tx)
			close(inserted)
			<-release // the transaction stays open, its seq assigned
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-inserted
	bDone := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(bDone)
		err := b.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			seqB, err = notice(ctx, tx)
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}()

	// The client: reads after its cursor and moves the cursor past what it
	// read, as every client does.
	var cursor int64
	poll := func() {
		evs, _, err := b.Feed(ctx, dev, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			read = append(read, e.Seq)
			cursor = e.Seq
		}
	}
	if noBatchLock {
		// B commits while A is open; wait until the client has read it.
		deadline := time.Now().Add(30 * time.Second)
		for len(read) == 0 && time.Now().Before(deadline) {
			poll()
			time.Sleep(5 * time.Millisecond)
		}
	} else {
		// B must wait for A's batch: give it time to (wrongly) get through.
		window := time.After(500 * time.Millisecond)
	wait:
		for {
			select {
			case <-bDone:
				t.Fatal("B committed while A's batch held an earlier seq open")
			case <-window:
				break wait
			case <-time.After(5 * time.Millisecond):
				poll()
			}
		}
	}
	close(release)
	wg.Wait()
	poll()
	poll()
	return read, seqA, seqB
}

// TestPostgresFeedNeverSkips: the batch lock makes a seq assigned later
// commit later, so a cursor reader reads every event.
func TestPostgresFeedNeverSkips(t *testing.T) {
	read, seqA, seqB := feedRace(t, false)
	if seqB <= seqA {
		t.Fatalf("seq A %d, B %d: B should come after A", seqA, seqB)
	}
	if len(read) != 2 || read[0] != seqA || read[1] != seqB {
		t.Fatalf("client read %v, want [%d %d]", read, seqA, seqB)
	}
}

// TestPostgresFeedSkipsWithoutBatchLock shows what the lock prevents: with
// it off, B's later seq commits first, the client's cursor passes A's, and
// A's event is never read. (If this starts passing without a gap, the race
// above no longer exercises the lock.)
func TestPostgresFeedSkipsWithoutBatchLock(t *testing.T) {
	read, seqA, seqB := feedRace(t, true)
	if seqB <= seqA {
		t.Fatalf("seq A %d, B %d", seqA, seqB)
	}
	for _, s := range read {
		if s == seqA {
			t.Fatalf("client read %v including A's %d: no gap without the lock, so the test proves nothing", read, seqA)
		}
	}
	t.Logf("without the batch lock the client read %v and skipped seq %d for good", read, seqA)
}

// TestPostgresConcurrentFirstStart: instances starting together on an
// empty database apply each migration once.
func TestPostgresConcurrentFirstStart(t *testing.T) {
	url := testdb.Empty(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), Options{Database: url})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var applied, distinct int
	if err := stores[0].rdb.NewRaw(`SELECT count(*), count(DISTINCT name) FROM bun_migrations`).Scan(context.Background(), &applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied == 0 {
		t.Fatalf("%d migration rows for %d migrations", applied, distinct)
	}
	if err := stores[n-1].Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT ? , ?`:                     `SELECT $1 , $2`,
		`x > ?1 AND y = ?2 OR z < ?1`:      `x > $1 AND y = $2 OR z < $1`,
		`SELECT '?' , "a?b", ?`:            `SELECT '?' , "a?b", $1`,
		`OFFSET ?3 - 1`:                    `OFFSET $3 - 1`,
		`no placeholders`:                  `no placeholders`,
		`WHERE a = ? AND b = '' AND c = ?`: `WHERE a = $1 AND b = '' AND c = $2`,
	} {
		if got := rebindDollar(in); got != want {
			t.Errorf("rebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPostgresBatchHeadReadAfterLockWait: instance B's batch waits for the
// batch lock while A's batch advances the event head and commits. The
// head B's batch reads must include A's batch: it is how B learns that
// another instance committed events before it publishes its own to local
// streams. Read in the lock statement's own snapshot (taken before the
// wait) it would be A's old head, and a stream on B could then skip A's
// events for good (tests/scaleout's ordering test caught that).
func TestPostgresBatchHeadReadAfterLockWait(t *testing.T) {
	st := openInstances(t, 2, false)
	a, b := st[0], st[1]
	ctx := context.Background()
	txA, err := a.wdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback() }()
	before, err := a.eng.beginBatch(ctx, txA)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	errs := make(chan error, 1)
	go func() {
		txB, err := b.wdb.BeginTx(ctx, nil)
		if err != nil {
			errs <- err
			return
		}
		defer func() { _ = txB.Rollback() }()
		head, err := b.eng.beginBatch(ctx, txB) // waits for A's lock
		if err != nil {
			errs <- err
			return
		}
		got <- head
	}()
	time.Sleep(200 * time.Millisecond) // B is waiting for the lock
	if err := a.eng.endBatch(ctx, txA, before+5); err != nil {
		t.Fatal(err)
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case head := <-got:
		if head != before+5 {
			t.Fatalf("B's batch read event head %d after A committed %d (A's head before: %d)", head, before+5, before)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("B's batch did not get the lock after A committed")
	}
}
