package store

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
)

// recorder is a Publisher that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	events []published
}

type published struct {
	ev      *models.Event
	devices []string
}

func (r *recorder) Publish(e *models.Event, devices []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, published{e, devices})
}
func (r *recorder) SessionsEnded([]string) {}

func (r *recorder) all() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]published(nil), r.events...)
}

func openDelivery(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "data", "sovereign.db")
	}
	if opts.Database == "" {
		opts.Database = testdb.URL(t)
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// seedDevice creates a user with one device and returns the device id.
func seedDevice(t testing.TB, s *Store, name string) string {
	t.Helper()
	var id string
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		u, err := InsertUser(ctx, tx, name, name, models.RoleMember)
		if err != nil {
			return err
		}
		id, err = InsertDevice(ctx, tx, u, name+" phone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// seedClaim records that claimer claimed owner's key package ref.
func seedClaim(t testing.TB, s *Store, claimer, owner string, ref []byte) {
	t.Helper()
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO key_package_claims (claimer_device_id, ref, device_id, claimed_at) VALUES (?, ?, ?, ?)`,
			claimer, ref, owner, models.Millis(tx.Now()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTimestampsStrictlyIncreaseWhenClockGoesBack(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); defer mu.Unlock(); now = t }
	path := filepath.Join(t.TempDir(), "data", "sovereign.db")
	database := testdb.URL(t)
	s := openDelivery(t, Options{Database: database, Path: path, Now: clock})
	ctx := context.Background()
	alice := seedDevice(t, s, "alice")
	gid := []byte("g-ts")
	if _, err := s.CreateGroup(ctx, alice, gid, nil); err != nil {
		t.Fatal(err)
	}
	send := func() *models.Receipt {
		t.Helper()
		r, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 40)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := send()
	r2 := send() // same clock reading
	set(now.Add(-time.Hour))
	r3 := send() // clock went back an hour
	if !(r1.Seq < r2.Seq && r2.Seq < r3.Seq) {
		t.Fatalf("seqs %d %d %d", r1.Seq, r2.Seq, r3.Seq)
	}
	if !r2.ServerTime.After(r1.ServerTime) || !r3.ServerTime.After(r2.ServerTime) {
		t.Fatalf("timestamps %v %v %v", r1.ServerTime, r2.ServerTime, r3.ServerTime)
	}
	// After a restart the last timestamp is read back from the database.
	_ = s.Close()
	s2 := openDelivery(t, Options{Database: database, Path: path, Now: clock})
	r4, _, err := s2.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 40)})
	if err != nil {
		t.Fatal(err)
	}
	if r4.Seq <= r3.Seq || !r4.ServerTime.After(r3.ServerTime) {
		t.Fatalf("after restart: seq %d ts %v, before: seq %d ts %v", r4.Seq, r4.ServerTime, r3.Seq, r3.ServerTime)
	}
}

func TestRecoverRevokedDevice(t *testing.T) {
	rec, s, alice, bob, carol, gid, _ := groupOfAliceAndBob(t, "g-recover")
	ctx := context.Background()
	// Bob has a key package in the directory.
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO key_packages (ref, device_id, cipher_suite, data, not_after, created_at) VALUES (?, ?, 1, ?, 0, 0)`, mlstest.Ref(), bob, []byte{0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before, _, err := s.GroupHistory(ctx, bob, gid, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error { return RecoverRevokedDevice(ctx, tx, bob) }); err != nil {
		t.Fatal(err)
	}
	// A notice to the group, published to Alice only.
	pubs := rec.all()
	last := pubs[len(pubs)-1]
	if last.ev.Kind != models.KindNotice || len(last.devices) != 1 || last.devices[0] != alice {
		t.Fatalf("notice published %+v to %v", last.ev, last.devices)
	}
	var n models.RemoveDeviceNotice
	if err := json.Unmarshal(last.ev.Payload, &n); err != nil || n.Type != "remove_device" || n.DeviceID != bob || n.Reason != ReasonDeviceRevoked {
		t.Fatalf("notice payload %s (%v)", last.ev.Payload, err)
	}
	// Bob is no longer a member, sees nothing new, and cannot send.
	if _, err := s.GetGroup(ctx, bob, gid); !models.IsCode(err, models.EFORBIDDEN) {
		t.Fatalf("revoked device reads group: %v", err)
	}
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 40)}); err != nil {
		t.Fatal(err)
	}
	after, _, err := s.GroupHistory(ctx, bob, gid, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("revoked device sees %d events, had %d", len(after), len(before))
	}
	var kps, claims int
	_ = s.rdb.NewRaw(`SELECT COUNT(*) FROM key_packages WHERE device_id = ?`, bob).Scan(ctx, &kps)
	_ = s.rdb.NewRaw(`SELECT COUNT(*) FROM key_package_claims WHERE device_id = ?`, bob).Scan(ctx, &claims)
	if kps != 0 || claims != 0 {
		t.Fatalf("key packages %d, claims %d left", kps, claims)
	}
	// The members' Remove commit lists Bob: accepted (a no-op for routing).
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 100), RemoveDevices: []string{bob}}); err != nil {
		t.Fatalf("remove commit after revocation: %v", err)
	}
	// Removing a device that never belonged is an error.
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 2, mls.ContentCommit, nil, 100), RemoveDevices: []string{carol}}); !models.IsCode(err, models.EINVALID) {
		t.Fatalf("remove of a stranger: %v", err)
	}
}

func TestRetentionAndQuotaAccounting(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	s := openDelivery(t, Options{Now: clock, GroupQuotaBytes: 10_000})
	ctx := context.Background()
	alice := seedDevice(t, s, "alice")
	gid := []byte("g-quota")
	if _, err := s.CreateGroup(ctx, alice, gid, nil); err != nil {
		t.Fatal(err)
	}
	msg := func() []byte { return mlstest.PrivateMessageSize(gid, 0, mls.ContentApplication, 1000) }
	for i := 0; i < 10; i++ {
		if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: msg()}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i == 4 {
			advance(time.Hour)
		}
	}
	_, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: msg()})
	if !models.IsCode(err, models.EQUOTA) {
		t.Fatalf("11th KB into a 10 KB quota: %v", err)
	}
	n, err := s.DeleteExpiredEvents(ctx, now.Add(-30*time.Minute))
	if err != nil || n != 5 {
		t.Fatalf("DeleteExpiredEvents = %d, %v; want 5", n, err)
	}
	g, err := s.GetGroup(ctx, alice, gid)
	if err != nil {
		t.Fatal(err)
	}
	if g.BytesUsed != 5000 {
		t.Fatalf("bytes_used = %d, want 5000", g.BytesUsed)
	}
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: msg()}); err != nil {
		t.Fatalf("after cleanup: %v", err)
	}
	// Idempotency keys older than the cut-off go too.
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid, Message: msg(), IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	advance(IdempotencyTTL + time.Minute)
	if n, err := s.DeleteExpiredIdempotencyKeys(ctx, now.Add(-IdempotencyTTL)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredIdempotencyKeys = %d, %v", n, err)
	}
}

// TestPublishTargets: after commit, each event is published once to the
// devices whose feeds it joins: a commit to every member at its seq (the
// removed device included, the added one not), a Welcome to its device
// only, a message to the members after the commit.
func TestPublishTargets(t *testing.T) {
	rec, s, alice, bob, carol, gid, refC := groupOfAliceAndBob(t, "g-publish")
	ctx := context.Background()
	res, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, 1, mls.ContentCommit, nil, 100), Welcome: mlstest.Welcome(refC), RemoveDevices: []string{bob}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: carol, GroupID: gid, Message: mlstest.PrivateMessage(gid, 2, mls.ContentApplication, nil, 40)}); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	want := []struct {
		kind    models.EventKind
		devices []string
	}{
		{models.KindCommit, []string{alice}},
		{models.KindWelcome, []string{bob}},
		{models.KindCommit, []string{alice, bob}},
		{models.KindWelcome, []string{carol}},
		{models.KindApplication, []string{alice, carol}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events published, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ev.Kind != w.kind || !sameSet(g.devices, w.devices) {
			t.Fatalf("event %d: %s to %v, want %s to %v", i, g.ev.Kind, g.devices, w.kind, w.devices)
		}
		if i > 0 && (g.ev.Seq <= got[i-1].ev.Seq || !g.ev.ServerTime.After(got[i-1].ev.ServerTime)) {
			t.Fatalf("event %d not after event %d", i, i-1)
		}
	}
	if got[2].ev.Seq != res.Commit.Seq || got[3].ev.RecipientDeviceID != carol {
		t.Fatalf("commit %+v, welcome %+v", got[2].ev, got[3].ev)
	}
}

// groupOfAliceAndBob opens a store with a recording publisher, creates
// group gid by alice, and adds bob with a Welcome at epoch 0; carol's key
// package ref refC is claimed by alice but not used yet.
func groupOfAliceAndBob(t *testing.T, gid string) (rec *recorder, s *Store, alice, bob, carol string, g, refC []byte) {
	t.Helper()
	rec = &recorder{}
	s = openDelivery(t, Options{Publisher: rec})
	ctx := context.Background()
	alice, bob, carol = seedDevice(t, s, "alice"), seedDevice(t, s, "bob"), seedDevice(t, s, "carol")
	g = []byte(gid)
	if _, err := s.CreateGroup(ctx, alice, g, nil); err != nil {
		t.Fatal(err)
	}
	refB := mlstest.Ref()
	refC = mlstest.Ref()
	seedClaim(t, s, alice, bob, refB)
	seedClaim(t, s, alice, carol, refC)
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: g,
		Commit: mlstest.PrivateMessage(g, 0, mls.ContentCommit, nil, 100), Welcome: mlstest.Welcome(refB)}); err != nil {
		t.Fatal(err)
	}
	return rec, s, alice, bob, carol, g, refC
}

// TestSendTargetsFollowMembershipChanges checks the writer's member-list
// cache: every change of membership (a commit adding a device, a device's
// revocation, a rolled-back use case) is seen by the next send.
func TestSendTargetsFollowMembershipChanges(t *testing.T) {
	rec, s, alice, bob, carol, gid, refC := groupOfAliceAndBob(t, "g-cache")
	ctx := context.Background()
	epoch := uint64(1)
	send := func(want ...string) {
		t.Helper()
		if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: alice, GroupID: gid,
			Message: mlstest.PrivateMessage(gid, epoch, mls.ContentApplication, nil, 40)}); err != nil {
			t.Fatal(err)
		}
		all := rec.all()
		if got := all[len(all)-1]; got.ev.Kind != models.KindApplication || !sameSet(got.devices, want) {
			t.Fatalf("sent to %v, want %v", got.devices, want)
		}
	}
	send(alice, bob)
	send(alice, bob) // from the cache

	// A use case that adds a member and reads the list, then fails: the
	// rollback must not leave its list behind, even though the next real
	// change brings members_version to the same number again.
	dave := seedDevice(t, s, "dave")
	errBoom := errors.New("boom")
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq) VALUES (?, ?, 0)`, gid, dave).Exec(ctx); err != nil {
			return err
		}
		var v int64
		if err := tx.NewRaw(`SELECT members_version FROM groups WHERE id = ?`, gid).Scan(ctx, &v); err != nil {
			return err
		}
		if _, err := groupMembers(ctx, tx, gid, v); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("failing use case: %v", err)
	}

	// A commit adding carol.
	if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: alice, GroupID: gid,
		Commit: mlstest.PrivateMessage(gid, epoch, mls.ContentCommit, nil, 100), Welcome: mlstest.Welcome(refC)}); err != nil {
		t.Fatal(err)
	}
	epoch++
	send(alice, bob, carol)

	// Revoking bob's device ends his membership (compromise recovery).
	var bobUser string
	if err := s.rdb.NewRaw(`SELECT user_id FROM devices WHERE id = ?`, bob).Scan(ctx, &bobUser); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeDevice(ctx, bobUser, bob); err != nil {
		t.Fatal(err)
	}
	send(alice, carol)
}
