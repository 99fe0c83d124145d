package store

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
)

// chained returns the events of feed that belong to group gid's chain.
func chained(feed []*models.Event, gid []byte) []*models.Event {
	var out []*models.Event
	for _, e := range feed {
		if bytes.Equal(e.GroupID, gid) && e.Chained() {
			out = append(out, e)
		}
	}
	return out
}

func readFeed(t *testing.T, s *Store, device string) []*models.Event {
	t.Helper()
	evs, _, err := s.Feed(context.Background(), device, 0, MaxFeedPage)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestEventChain: every group event all members receive is on one hash
// chain from genesis, stored, read back and published alike; welcomes are
// not; and any change to a stored event's bytes, seq or order, or a
// withheld event, breaks verification.
func TestEventChain(t *testing.T) {
	rec, s, alice, bob, carol, gid, refC := groupOfAliceAndBob(t, "g-chain")
	ctx := context.Background()
	for i := range 5 {
		from := alice
		if i%2 == 1 {
			from = bob
		}
		if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: from, GroupID: gid, Message: mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 40+i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Carol joins mid-chain (a commit with a Welcome), then is revoked (a
	// group notice to the others).
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 100), Welcome: mlstest.Welcome(refC)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: carol, GroupID: gid, Message: mlstest.PrivateMessage(gid, 2, mls.ContentApplication, nil, 50)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error { return RecoverRevokedDevice(ctx, tx, carol) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: bob, GroupID: gid, Message: mlstest.PrivateMessage(gid, 2, mls.ContentApplication, nil, 60)}); err != nil {
		t.Fatal(err)
	}

	aliceFeed := chained(readFeed(t, s, alice), gid)
	head, err := models.VerifyChain(models.ChainGenesis, aliceFeed)
	if err != nil {
		t.Fatalf("alice's chain from genesis: %v", err)
	}
	if len(aliceFeed) != 10 { // bob's add, 5 messages, carol's add, carol's message, notice, bob's message
		t.Fatalf("alice's chain has %d events, want 10", len(aliceFeed))
	}
	var stored []byte
	if err := s.rdb.NewRaw(`SELECT chain_head FROM groups WHERE id = ?`, gid).Scan(ctx, &stored); err != nil || !bytes.Equal(stored, head) {
		t.Fatalf("groups.chain_head %x (%v), chain's head %x", stored, err, head)
	}
	// Bob joined after the first commit: his chain is the tail of alice's.
	bobFeed := chained(readFeed(t, s, bob), gid)
	if _, err := models.VerifyChain(aliceFeed[0].Hash, bobFeed); err != nil || len(bobFeed) != len(aliceFeed)-1 {
		t.Fatalf("bob's chain (%d events): %v", len(bobFeed), err)
	}
	// Carol's chain starts mid-way: trusted from her first event on.
	carolFeed := chained(readFeed(t, s, carol), gid)
	if len(carolFeed) == 0 || bytes.Equal(carolFeed[0].PrevHash, models.ChainGenesis) {
		t.Fatalf("carol's chain %d events", len(carolFeed))
	}
	if _, err := models.VerifyChain(nil, carolFeed); err != nil {
		t.Fatalf("carol's chain: %v", err)
	}
	// Welcomes are outside the chain; the live events carry the stored hashes.
	for _, e := range readFeed(t, s, carol) {
		if e.Kind == models.KindWelcome && (e.Hash != nil || e.PrevHash != nil) {
			t.Fatalf("welcome seq %d carries a hash", e.Seq)
		}
	}
	bySeq := map[int64]*models.Event{}
	for _, e := range aliceFeed {
		bySeq[e.Seq] = e
	}
	for _, p := range rec.all() {
		if st, ok := bySeq[p.ev.Seq]; ok && (!bytes.Equal(st.Hash, p.ev.Hash) || !bytes.Equal(st.PrevHash, p.ev.PrevHash)) {
			t.Fatalf("seq %d published with hash %x, stored %x", p.ev.Seq, p.ev.Hash, st.Hash)
		}
	}

	// What a misbehaving server could do to the list, each detected.
	drop := append(append([]*models.Event{}, aliceFeed[:3]...), aliceFeed[4:]...)
	swap := append([]*models.Event{}, aliceFeed...)
	swap[3], swap[4] = swap[4], swap[3]
	for name, evs := range map[string][]*models.Event{"withheld": drop, "reordered": swap} {
		if _, err := models.VerifyChain(models.ChainGenesis, evs); err == nil {
			t.Errorf("%s event not detected", name)
		}
	}
	// And to the stored rows: the payload, the seq, the sender, the kind.
	for name, c := range map[string]struct {
		q   string
		arg any
	}{
		"payload": {`UPDATE events SET payload = ? WHERE seq = ?`, []byte("other bytes")},
		"seq":     {`UPDATE events SET seq = seq + ? WHERE seq = ?`, 100000},
		"sender":  {`UPDATE events SET sender_device_id = ? WHERE seq = ?`, "someone-else"},
		"kind":    {`UPDATE events SET kind = ? WHERE seq = ?`, "proposal"},
	} {
		t.Run(name, func(t *testing.T) {
			s2, a2, g2 := chainFixture(t)
			evs := chained(readFeed(t, s2, a2), g2)
			seq := evs[2].Seq
			if err := s2.Write(ctx, func(ctx context.Context, tx *Tx) error {
				_, err := tx.NewRaw(c.q, c.arg, seq).Exec(ctx)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			after := chained(readFeed(t, s2, a2), g2)
			if _, err := models.VerifyChain(models.ChainGenesis, after); err == nil {
				t.Fatalf("a changed %s (seq %d) still verifies", name, seq)
			} else {
				t.Logf("changed %s: %v", name, err)
			}
		})
	}
}

// chainFixture is a group of alice and bob with three messages.
func chainFixture(t *testing.T) (*Store, string, []byte) {
	t.Helper()
	_, s, alice, _, _, gid, _ := groupOfAliceAndBob(t, "g-chain-fix")
	for i := range 3 {
		if _, _, err := s.SendMessage(context.Background(), SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 40+i)}); err != nil {
			t.Fatal(err)
		}
	}
	return s, alice, gid
}

// TestPostgresEventChainAcrossInstances: two instances appending to one
// group at the same time still build one linear chain (the head is read
// and advanced under the batch lock).
func TestPostgresEventChainAcrossInstances(t *testing.T) {
	st := openInstances(t, 2, false)
	ctx := context.Background()
	alice := seedDevice(t, st[0], "alice")
	gid := []byte("g-chain-pg")
	if _, err := st[0].CreateGroup(ctx, alice, gid, nil); err != nil {
		t.Fatal(err)
	}
	const per = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for _, s := range st {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 40+i)}); err != nil {
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
	evs := chained(readFeed(t, st[1], alice), gid)
	if len(evs) != 2*per {
		t.Fatalf("%d chained events, want %d", len(evs), 2*per)
	}
	if _, err := models.VerifyChain(models.ChainGenesis, evs); err != nil {
		t.Fatalf("chain across instances: %v", err)
	}
}
