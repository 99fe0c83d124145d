package push_test

import (
	"context"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/push/pushtest"
	"github.com/sovereign-im/sovereign/testutil"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestPushAcrossInstances: two instances on one PostgreSQL database. Bob
// and Carol subscribe through A, and Carol keeps a stream open on A; Alice
// sends through B, whose worker is the only one running. B's worker pushes
// to Bob (B learnt of the subscription saved on A) and not to Carol (her
// stream is open on A, which B's own hub cannot see).
func TestPushAcrossInstances(t *testing.T) {
	url := testdb.Fresh(t)
	rx := pushtest.New(t)
	a := &env{t: t, database: url, rx: rx, minGap: time.Second}
	a.open(false)
	b := &env{t: t, database: url, rx: rx, minGap: time.Second}
	b.open(true)
	ctx := context.Background()

	alice, bob, carol := a.device("alice"), a.device("bob"), a.device("carol")
	bobSub, carolSub := a.subscribe(bob), a.subscribe(carol)
	stream := a.hub.Subscribe(carol, "")
	defer stream.Close(nil)
	rx.Wait(t, waitFor, "B to learn of A's subscriptions and stream", func() bool {
		open, err := b.st.StreamOpenElsewhere(ctx, carol)
		if err != nil {
			t.Fatal(err)
		}
		return open && b.st.PushSubscribed(bob) && b.st.PushSubscribed(carol)
	})

	groupID := []byte("two-instance-group")
	feed := testutil.Feed{St: b.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob, carol); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("hello from B")); err != nil {
		t.Fatal(err)
	}
	rx.Wait(t, waitFor, "bob's push", func() bool { return len(rx.PushesFor(bobSub)) == 1 })
	rx.Wait(t, waitFor, "the outbox to drain", func() bool { return b.outbox() == 0 })
	if n := len(rx.PushesFor(carolSub)); n != 0 {
		t.Errorf("carol, streaming from A, got %d pushes sent by B", n)
	}
	if f := rx.Failures(); len(f) > 0 {
		t.Fatalf("the push service refused pushes: %v", f)
	}
}
