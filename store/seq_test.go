package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

var errFailAfterInsert = errors.New("use case fails after inserting")

// insertThenFail is a use case that places an event on gid's chain, then
// fails: its insert, its seq and its chain step must all be undone.
func insertThenFail(gid []byte, device string) WriteFunc {
	return func(ctx context.Context, tx *Tx) error {
		epoch := uint64(1)
		ev := &models.Event{Kind: models.KindApplication, GroupID: gid, Epoch: &epoch, SenderDeviceID: device, Payload: []byte("rolled back")}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		return errFailAfterInsert
	}
}

// checkFeed fails unless device's feed holds want events of group gid's
// chain, verifying from genesis, and (SQLite, where the writer numbers
// events) every seq of the feed follows the one before it.
func checkFeed(t *testing.T, s *Store, device string, gid []byte, want int) {
	t.Helper()
	feed := readFeed(t, s, device)
	evs := chained(feed, gid)
	if len(evs) != want {
		t.Fatalf("%d chained events, want %d", len(evs), want)
	}
	if _, err := models.VerifyChain(models.ChainGenesis, evs); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if s.Engine() != "sqlite" {
		return // PostgreSQL's sequence may skip values (as it always did)
	}
	for i := 1; i < len(feed); i++ {
		if feed[i].Seq != feed[i-1].Seq+1 {
			t.Fatalf("seq %d follows %d: a hole", feed[i].Seq, feed[i-1].Seq)
		}
	}
}

// TestFailedUseCaseGivesItsSeqBack: the writer numbers events before
// inserting them (so the chain hash goes in with the row); a use case that
// inserted an event and then failed, alone or in the middle of a batch of
// sends, leaves no hole, no reused seq and no broken chain, and neither
// does one that was the first to number an event after a restart.
func TestFailedUseCaseGivesItsSeqBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "sovereign.db")
	db := testdb.URL(t)
	s := openDelivery(t, Options{Path: path, Database: db})
	alice, bob := seedDevice(t, s, "alice"), seedDevice(t, s, "bob")
	gid := []byte("g-seq")
	if _, err := s.CreateGroup(ctx, alice, gid, nil); err != nil {
		t.Fatal(err)
	}
	send := func(s *Store, i int) (*models.Receipt, error) {
		r, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 40+i%50)})
		return r, err
	}
	first, err := send(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, insertThenFail(gid, alice)); !errors.Is(err, errFailAfterInsert) {
		t.Fatalf("failing use case: %v", err)
	}
	next, err := send(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Engine() == "sqlite" && next.Seq != first.Seq+1 {
		t.Fatalf("send after a rolled-back event has seq %d, want %d", next.Seq, first.Seq+1)
	}
	checkFeed(t, s, alice, gid, 2)

	// Failing use cases among concurrent sends: batches hold both.
	const senders, per = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, senders*per*2)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := send(s, g*per+i); err != nil {
					errs <- err
				}
				if err := s.Write(ctx, insertThenFail(gid, bob)); !errors.Is(err, errFailAfterInsert) {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkFeed(t, s, alice, gid, 2+senders*per)

	if s.Engine() != "sqlite" {
		return
	}
	// After a restart the first use case to number an event fails: the
	// writer must not forget where the stored events end.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDelivery(t, Options{Path: path, Database: db})
	if err := s.Write(ctx, insertThenFail(gid, alice)); !errors.Is(err, errFailAfterInsert) {
		t.Fatalf("failing use case: %v", err)
	}
	if _, err := send(s, 2); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	checkFeed(t, s, alice, gid, 3+senders*per)
}
