package store_test

import (
	"context"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// recorder is a Publisher that remembers what was published.
type recorder struct {
	mu   sync.Mutex
	seen map[int64][]string
}

func (r *recorder) Publish(e *models.Event, devices []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[e.Seq] = slices.Sorted(slices.Values(devices))
}
func (r *recorder) SessionsEnded([]string) {}

type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

func open(t *testing.T) (*store.Store, *recorder, *clock) {
	t.Helper()
	rec := &recorder{seen: map[int64][]string{}}
	c := &clock{}
	s, err := store.Open(context.Background(), store.Options{
		Database: testdb.URL(t), Path: filepath.Join(t.TempDir(), "data", "sovereign.db"), Publisher: rec, Now: c.now,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, rec, c
}

func devices(t *testing.T, s *store.Store, names ...string) []string {
	t.Helper()
	var ids []string
	err := s.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		for _, n := range names {
			u, err := store.InsertUser(ctx, tx, n, n, models.RoleMember)
			if err != nil {
				return err
			}
			d, err := store.InsertDevice(ctx, tx, u, n)
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

func seqs(evs []*models.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestFeedFollowsMembershipIntervals(t *testing.T) {
	ctx := context.Background()
	s, rec, _ := open(t)
	ids := devices(t, s, "alice", "bob", "carol")
	a, b, c := ids[0], ids[1], ids[2]
	f := testutil.Feed{St: s}
	g := []byte("group-1")
	other := []byte("group-2")
	ev := must[*models.Event](t)
	if err := f.CreateGroup(ctx, g, a, b); err != nil {
		t.Fatal(err)
	}
	if err := f.CreateGroup(ctx, other, b); err != nil {
		t.Fatal(err)
	}
	e1 := ev(f.Send(ctx, g, a, models.KindApplication, []byte("one")))
	e2 := ev(f.Send(ctx, other, b, models.KindApplication, []byte("not for alice")))
	if err := f.AddMember(ctx, g, c); err != nil {
		t.Fatal(err)
	}
	e3 := ev(f.Send(ctx, g, b, models.KindApplication, []byte("three")))
	e4 := ev(f.Remove(ctx, g, a, b)) // bob removed: gets e4, nothing after
	e5 := ev(f.Send(ctx, g, a, models.KindApplication, []byte("five")))
	e6 := ev(f.SendToDevice(ctx, g, c, models.KindWelcome, []byte("welcome")))

	tests := []struct {
		device string
		want   []int64
	}{
		{a, []int64{e1.Seq, e3.Seq, e4.Seq, e5.Seq}},
		{b, []int64{e1.Seq, e2.Seq, e3.Seq, e4.Seq}},
		{c, []int64{e3.Seq, e4.Seq, e5.Seq, e6.Seq}},
	}
	for _, tt := range tests {
		got, more, err := s.Feed(ctx, tt.device, 0, 100)
		if err != nil || more || !slices.Equal(seqs(got), tt.want) {
			t.Errorf("feed(%s) = %v more=%v err=%v, want %v", tt.device, seqs(got), more, err, tt.want)
		}
		head, err := s.FeedHead(ctx, tt.device)
		if err != nil || head != tt.want[len(tt.want)-1] {
			t.Errorf("head(%s) = %d %v, want %d", tt.device, head, err, tt.want[len(tt.want)-1])
		}
		// Paging: one at a time, every event once, more until the end.
		var paged []int64
		cur := int64(0)
		for {
			page, more, err := s.Feed(ctx, tt.device, cur, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page[0].Seq)
			cur = page[0].Seq
			if more != (len(paged) < len(tt.want)) {
				t.Errorf("feed(%s) after %d: more=%v", tt.device, cur, more)
			}
		}
		if !slices.Equal(paged, tt.want) {
			t.Errorf("paged feed(%s) = %v, want %v", tt.device, paged, tt.want)
		}
	}
	// The removing commit was published to the removed device too.
	if got := rec.seen[e4.Seq]; !slices.Contains(got, b) || !slices.Contains(got, a) || !slices.Contains(got, c) {
		t.Errorf("commit published to %v, want alice, bob and carol", got)
	}
	if got := rec.seen[e5.Seq]; slices.Contains(got, b) {
		t.Errorf("event after removal published to removed device: %v", got)
	}
	// The event carries what the wire needs.
	got, _, _ := s.Feed(ctx, c, e5.Seq, 1)
	w := got[0]
	if w.ID != e6.ID || w.Kind != models.KindWelcome || w.RecipientDeviceID != c || string(w.Payload) != "welcome" || !w.ServerTime.Equal(e6.ServerTime) {
		t.Errorf("welcome read back as %+v", w)
	}
}

func TestAckIsMonotonicAndBoundedByHead(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	ids := devices(t, s, "alice", "bob")
	f := testutil.Feed{St: s}
	g := []byte("g")
	if err := f.CreateGroup(ctx, g, ids[0]); err != nil {
		t.Fatal(err)
	}
	e1 := must[*models.Event](t)(f.Send(ctx, g, ids[0], models.KindApplication, []byte("x")))
	must[*models.Event](t)(f.Send(ctx, []byte("g"), ids[0], models.KindApplication, []byte("y")))
	if err := f.CreateGroup(ctx, []byte("h"), ids[1]); err != nil {
		t.Fatal(err)
	}
	e3 := must[*models.Event](t)(f.Send(ctx, []byte("h"), ids[1], models.KindApplication, []byte("z")))

	tests := []struct {
		name   string
		seq    int64
		want   int64
		reason string
	}{
		{"first ack", e1.Seq, e1.Seq, ""},
		{"backwards is a no-op", 0, e1.Seq, ""},
		{"to head", e1.Seq + 1, e1.Seq + 1, ""},
		{"beyond the device's head (another group's event)", e3.Seq, 0, "ack_beyond_head"},
		{"negative", -1, 0, "invalid_seq"},
	}
	for _, tt := range tests {
		got, err := s.Ack(ctx, ids[0], tt.seq)
		if tt.reason != "" {
			var de *models.Error
			if !models.IsCode(err, models.EINVALID) || !asErr(err, &de) || de.Reason != tt.reason {
				t.Errorf("%s: err = %v, want %s", tt.name, err, tt.reason)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Ack = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	if acked, _ := s.AckedSeq(ctx, ids[0]); acked != e1.Seq+1 {
		t.Errorf("cursor = %d", acked)
	}
}

func asErr(err error, de **models.Error) bool {
	e, ok := err.(*models.Error)
	if ok {
		*de = e
	}
	return ok
}

func TestPruneKeepsWhatAMemberStillNeeds(t *testing.T) {
	ctx := context.Background()
	s, _, _ := open(t)
	ids := devices(t, s, "alice", "bob")
	a, b := ids[0], ids[1]
	f := testutil.Feed{St: s}
	g := []byte("g")
	if err := f.CreateGroup(ctx, g, a, b); err != nil {
		t.Fatal(err)
	}
	var evs []*models.Event
	for i := range 4 {
		evs = append(evs, must[*models.Event](t)(f.Send(ctx, g, a, models.KindApplication, make([]byte, 100+i))))
	}
	welcome := must[*models.Event](t)(f.SendToDevice(ctx, nil, b, models.KindNotice, []byte(`{"type":"x"}`)))
	if err := s.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.NewRaw(`UPDATE groups SET bytes_used = 1000`).Exec(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	retention := 24 * time.Hour

	// Alice acked everything, Bob nothing: nothing may go.
	must[int64](t)(s.Ack(ctx, a, evs[3].Seq))
	res := must[store.PruneResult](t)(s.PruneFeed(ctx, retention))
	if res.Acked != 0 || res.Expired != 0 {
		t.Fatalf("pruned %+v while bob has not acked", res)
	}
	// Bob acks the first two: those two go, the rest stays.
	must[int64](t)(s.Ack(ctx, b, evs[1].Seq))
	res = must[store.PruneResult](t)(s.PruneFeed(ctx, retention))
	if res.Acked != 2 {
		t.Fatalf("pruned %+v, want 2 acked", res)
	}
	got, _, _ := s.Feed(ctx, b, evs[1].Seq, 100)
	if !slices.Equal(seqs(got), []int64{evs[2].Seq, evs[3].Seq, welcome.Seq}) {
		t.Fatalf("bob's feed after prune = %v", seqs(got))
	}
	var used int64
	if err := s.ReadDB().NewRaw(`SELECT bytes_used FROM groups`).Scan(ctx, &used); err != nil || used != 1000-100-101 {
		t.Errorf("bytes_used = %d %v, want %d", used, err, 1000-100-101)
	}

	// Resuming below one's own ack across deleted events is 410; at or
	// after it is fine.
	var de *models.Error
	if err := s.CheckCursor(ctx, a, 0); !models.IsCode(err, models.EGONE) || !asErr(err, &de) || de.Resync == nil {
		t.Fatalf("CheckCursor(alice, 0) = %v, want 410 with resync", err)
	}
	if len(de.Resync.Groups) != 1 || string(de.Resync.Groups[0].GroupID) != "g" || de.Resync.ResumeAfter != welcome.Seq {
		t.Errorf("resync = %+v", de.Resync)
	}
	for _, c := range []struct {
		dev   string
		after int64
	}{{a, evs[1].Seq}, {b, evs[1].Seq}, {a, evs[3].Seq}} {
		if err := s.CheckCursor(ctx, c.dev, c.after); err != nil {
			t.Errorf("CheckCursor(%s, %d) = %v", c.dev, c.after, err)
		}
	}
	if err := s.CheckCursor(ctx, a, welcome.Seq+1); !models.IsCode(err, models.EINVALID) {
		t.Errorf("cursor ahead = %v, want 422", err)
	}

	// Bob acks through the notice: the rest of the group and the notice go.
	must[int64](t)(s.Ack(ctx, b, welcome.Seq))
	res = must[store.PruneResult](t)(s.PruneFeed(ctx, retention))
	if res.Acked != 3 || res.Expired != 0 {
		t.Fatalf("pruned %+v, want 3 acked", res)
	}
	if n, _, _ := s.Feed(ctx, b, 0, 100); len(n) != 0 {
		t.Errorf("feed not empty: %v", seqs(n))
	}
}

func TestPruneExpiresUnackedAnd410(t *testing.T) {
	ctx := context.Background()
	s, _, clk := open(t)
	ids := devices(t, s, "alice", "bob")
	f := testutil.Feed{St: s}
	g := []byte("g")
	if err := f.CreateGroup(ctx, g, ids...); err != nil {
		t.Fatal(err)
	}
	e1 := must[*models.Event](t)(f.Send(ctx, g, ids[0], models.KindApplication, []byte("old")))
	retention := time.Hour
	clk.advance(2 * retention)
	carol := devices(t, s, "carol")[0]
	e2 := must[*models.Event](t)(f.Send(ctx, g, ids[0], models.KindApplication, []byte("new")))
	res := must[store.PruneResult](t)(s.PruneFeed(ctx, retention))
	if res.Expired != 1 || res.Acked != 0 {
		t.Fatalf("pruned %+v, want 1 expired", res)
	}
	err := s.CheckCursor(ctx, ids[1], 0)
	var de *models.Error
	if !models.IsCode(err, models.EGONE) || !asErr(err, &de) || de.Resync.ResumeAfter != e2.Seq || de.Resync.Groups[0].Epoch != 0 {
		t.Fatalf("CheckCursor(bob, 0) = %v %+v", err, de)
	}
	if err := s.CheckCursor(ctx, ids[1], e1.Seq); err != nil {
		t.Errorf("CheckCursor(bob, %d) = %v", e1.Seq, err)
	}
	if err := s.CheckCursor(ctx, carol, 0); err != nil {
		t.Errorf("device created after the cutoff: %v", err)
	}
	got, _, _ := s.Feed(ctx, ids[1], e1.Seq, 10)
	if !slices.Equal(seqs(got), []int64{e2.Seq}) {
		t.Errorf("feed = %v", seqs(got))
	}
}
