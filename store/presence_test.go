package store

import (
	"context"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestPostgresPushStateAcrossInstances: with two instances on one
// database, a subscription saved on A is known to B (B queues pushes for
// it), a stream open on A is seen from B (B's worker sends no push to it),
// and both follow the device when the stream closes, the subscription is
// deleted on B, and A stops.
func TestPostgresPushStateAcrossInstances(t *testing.T) {
	url := testdb.Fresh(t)
	ctx := context.Background()
	type inst struct {
		hub *realtime.Hub
		st  *Store
	}
	open := func() inst {
		h := realtime.New(realtime.Options{})
		s, err := Open(ctx, Options{Database: url, Publisher: h, PushOnline: h.Online})
		if err != nil {
			t.Fatal(err)
		}
		return inst{h, s}
	}
	a, b := open(), open()
	t.Cleanup(func() { _ = b.st.Close() })
	aClosed := false
	t.Cleanup(func() {
		if !aClosed {
			_ = a.st.Close()
		}
	})

	var dev string
	if err := a.st.Write(ctx, func(ctx context.Context, tx *Tx) error {
		u, err := InsertUser(ctx, tx, "carol", "Carol", models.RoleMember)
		if err != nil {
			return err
		}
		dev, err = InsertDevice(ctx, tx, u, "phone")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	elsewhere := func(s *Store) bool {
		t.Helper()
		open, err := s.StreamOpenElsewhere(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		return open
	}

	if b.st.PushSubscribed(dev) {
		t.Fatal("B thinks the device is subscribed before it is")
	}
	start := time.Now()
	if _, err := a.st.SavePushSubscription(ctx, PushSubscription{DeviceID: dev, Endpoint: "https://push.example.org/x", P256dh: "k", Auth: "a"}); err != nil {
		t.Fatal(err)
	}
	eventually("B learns of the subscription saved on A", func() bool { return b.st.PushSubscribed(dev) })
	t.Logf("subscription known on B %v after the save on A", time.Since(start).Round(time.Millisecond))

	if elsewhere(b.st) {
		t.Fatal("B sees a stream before one is open")
	}
	start = time.Now()
	sub := a.hub.Subscribe(dev, "")
	eventually("B sees the stream open on A", func() bool { return elsewhere(b.st) })
	t.Logf("stream on A seen from B %v after it opened", time.Since(start).Round(time.Millisecond))
	if elsewhere(a.st) {
		t.Error("A reports its own stream as elsewhere")
	}
	second := a.hub.Subscribe(dev, "")
	sub.Close(nil)
	time.Sleep(200 * time.Millisecond)
	if !elsewhere(b.st) {
		t.Error("closing one of two streams on A hid the other from B")
	}
	second.Close(nil)
	eventually("B sees the last stream on A close", func() bool { return !elsewhere(b.st) })

	if _, err := b.st.DeletePushSubscription(ctx, dev); err != nil {
		t.Fatal(err)
	}
	eventually("A learns of the deletion on B", func() bool { return !a.st.PushSubscribed(dev) })

	a.hub.Subscribe(dev, "")
	eventually("B sees the new stream on A", func() bool { return elsewhere(b.st) })
	aClosed = true
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	if elsewhere(b.st) {
		t.Error("a stopped instance's streams still count")
	}
}
