package store

import (
	"context"
	"errors"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// recordingPublisher records SessionsEnded calls.
type recordingPublisher struct {
	mu    sync.Mutex
	ended [][]string
}

func (p *recordingPublisher) Publish(*models.Event, []string) {}
func (p *recordingPublisher) SessionsEnded(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = append(p.ended, slices.Clone(ids))
}

func openWithPublisher(t *testing.T, pub models.Publisher, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Database: testdb.URL(t), Path: t.TempDir() + "/d/db", Publisher: pub, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func seed(t *testing.T, s *Store, username string, devices, sessionsPerDevice int) (userID string, deviceIDs, sessionIDs []string) {
	t.Helper()
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		var err error
		if userID, err = InsertUser(ctx, tx, username, username, models.RoleMember); err != nil {
			return err
		}
		for i := 0; i < devices; i++ {
			d, err := InsertDevice(ctx, tx, userID, "d")
			if err != nil {
				return err
			}
			deviceIDs = append(deviceIDs, d)
			for j := 0; j < sessionsPerDevice; j++ {
				_, h := models.NewToken()
				id, err := InsertSession(ctx, tx, userID, d, h, time.Hour)
				if err != nil {
					return err
				}
				sessionIDs = append(sessionIDs, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// TestRevokeDevicePublishesSessionsEnded: revoking a device ends exactly
// its sessions and announces them after commit; a second revoke is a
// no-op; another user's device is not found.
func TestRevokeDevicePublishesSessionsEnded(t *testing.T) {
	pub := &recordingPublisher{}
	s := openWithPublisher(t, pub, nil)
	ctx := context.Background()
	u, devs, sess := seed(t, s, "alice", 2, 2)
	other, _, _ := seed(t, s, "bob", 1, 1)

	if err := s.RevokeDevice(ctx, other, devs[0]); !models.IsCode(err, models.ENOTFOUND) {
		t.Fatalf("revoke someone else's device: %v", err)
	}
	if err := s.RevokeDevice(ctx, u, devs[0]); err != nil {
		t.Fatal(err)
	}
	if len(pub.ended) != 1 || !sameSet(pub.ended[0], sess[:2]) {
		t.Fatalf("SessionsEnded calls %v, want %v", pub.ended, sess[:2])
	}
	if err := s.RevokeDevice(ctx, u, devs[0]); err != nil || len(pub.ended) != 1 {
		t.Fatalf("second revoke: %v, calls %d", err, len(pub.ended))
	}
	if _, _, err := s.EndOtherSessions(ctx, EndOthers{UserID: u, KeepSessionID: sess[2],
		StepUp: StepUpCheck{UserID: u, SessionID: sess[2], Operation: models.StepUpEndOtherSessions}}); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("end others without a step-up: %v", err)
	}
	grant := testGrant(t, s, u, sess[2], models.StepUpEndOtherSessions, "")
	n, _, err := s.EndOtherSessions(ctx, EndOthers{UserID: u, KeepSessionID: sess[2],
		StepUp: StepUpCheck{Token: grant, UserID: u, SessionID: sess[2], Operation: models.StepUpEndOtherSessions}})
	if err != nil || n != 1 || len(pub.ended) != 2 || !sameSet(pub.ended[1], sess[3:4]) {
		t.Fatalf("end others: n=%d err=%v calls %v", n, err, pub.ended)
	}
	if err := s.EndSession(ctx, u, sess[2]); err != nil || len(pub.ended) != 3 {
		t.Fatalf("end session: %v %v", err, pub.ended)
	}
	if err := s.EndSession(ctx, u, sess[2]); !models.IsCode(err, models.ENOTFOUND) {
		t.Fatalf("end ended session: %v", err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestEnsureAdminInvite: first call makes an invite (code shown once),
// later calls report it without a code, an expired one is replaced, and
// once an admin exists nothing is done.
func TestEnsureAdminInvite(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := openWithPublisher(t, nil, clock)
	ctx := context.Background()

	b, err := s.EnsureAdminInvite(ctx, time.Hour)
	if err != nil || b.Code == "" || b.AdminExists {
		t.Fatalf("first: %+v %v", b, err)
	}
	first := b.Code
	b, err = s.EnsureAdminInvite(ctx, time.Hour)
	if err != nil || b.Code != "" || b.AdminExists || b.ExpiresAt.IsZero() {
		t.Fatalf("second: %+v %v", b, err)
	}
	if inv, err := s.CheckInvite(ctx, models.HashInviteCode(first)); err != nil || inv.Role != models.RoleAdmin || inv.UsesLeft != 1 {
		t.Fatalf("check invite: %+v %v", inv, err)
	}
	// Typed differently: upper case, spaces instead of dashes.
	if _, err := s.CheckInvite(ctx, models.HashInviteCode(" "+toUpperSpaces(first)+" ")); err != nil {
		t.Fatalf("code as typed: %v", err)
	}

	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := s.CheckInvite(ctx, models.HashInviteCode(first)); !errors.Is(err, ErrInviteInvalid) {
		t.Fatalf("expired invite: %v", err)
	}
	b, err = s.EnsureAdminInvite(ctx, time.Hour)
	if err != nil || b.Code == "" || b.Code == first {
		t.Fatalf("after expiry: %+v %v", b, err)
	}
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := InsertUser(ctx, tx, "root", "Root", models.RoleAdmin)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b, err = s.EnsureAdminInvite(ctx, time.Hour)
	if err != nil || !b.AdminExists || b.Code != "" {
		t.Fatalf("with admin: %+v %v", b, err)
	}
}

func toUpperSpaces(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = ' '
		case c >= 'a' && c <= 'z':
			b[i] = c - 32
		}
	}
	return string(b)
}

// TestCreateInviteLimits refuses nonsense.
func TestCreateInviteLimits(t *testing.T) {
	s := openTest(t)
	for _, in := range []NewInvite{
		{Role: "owner", TTL: time.Hour, Uses: 1},
		{Role: models.RoleMember, TTL: time.Second, Uses: 1},
		{Role: models.RoleMember, TTL: 2 * MaxInviteTTL, Uses: 1},
		{Role: models.RoleMember, TTL: time.Hour, Uses: 0},
		{Role: models.RoleMember, TTL: time.Hour, Uses: MaxInviteUses + 1},
	} {
		if _, _, err := s.CreateInvite(context.Background(), in); !models.IsCode(err, models.EINVALID) {
			t.Errorf("%+v: %v", in, err)
		}
	}
}

// TestConcurrentInviteUse: an invite with n uses registers exactly n users
// however many race for it.
func TestConcurrentInviteUse(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	code, _, err := s.CreateInvite(ctx, NewInvite{Role: models.RoleMember, TTL: time.Hour, Uses: 3})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h, _ := NewUserHandle()
			_, tok := models.NewToken()
			cid, _ := NewUserHandle()
			_, err := s.Register(ctx, Registration{InviteHash: models.HashInviteCode(code), Username: "user" + string(rune('a'+i)),
				DisplayName: "U", Handle: h, DeviceName: "d", TokenHash: tok, SessionTTL: time.Hour,
				Credential: models.Credential{CredentialID: cid, Name: "p", PublicKey: []byte{1}, AttestationType: "none", AttestationFormat: "none"}})
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, ErrInviteInvalid) {
				t.Errorf("register: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if ok != 3 {
		t.Fatalf("%d registrations with a 3-use invite", ok)
	}
}

// TestCeremonyConsumedOnce: a ceremony can be consumed once, only as its
// own kind, and not after expiry on the store clock.
func TestCeremonyConsumedOnce(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	s := openWithPublisher(t, nil, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	ctx := context.Background()
	mk := func() string {
		c := &models.Ceremony{Kind: models.CeremonyLogin, SessionData: []byte(`{}`)}
		if err := s.CreateCeremony(ctx, c, time.Minute); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	id := mk()
	if _, err := s.ConsumeCeremony(ctx, id, models.CeremonyLogin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeCeremony(ctx, id, models.CeremonyLogin); !errors.Is(err, ErrCeremonyGone) {
		t.Fatalf("second consume: %v", err)
	}
	id = mk()
	if _, err := s.ConsumeCeremony(ctx, id, models.CeremonyRegister); !errors.Is(err, ErrCeremonyGone) {
		t.Fatalf("wrong kind: %v", err)
	}
	if _, err := s.ConsumeCeremony(ctx, id, models.CeremonyLogin); !errors.Is(err, ErrCeremonyGone) {
		t.Fatalf("after wrong-kind attempt: %v", err)
	}
	id = mk()
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if _, err := s.ConsumeCeremony(ctx, id, models.CeremonyLogin); !errors.Is(err, ErrCeremonyGone) {
		t.Fatalf("expired: %v", err)
	}
	// Expired ceremonies are swept when new ones are made.
	mk()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	mk()
	var n int
	if err := s.rdb.NewRaw(`SELECT count(*) FROM ceremonies`).Scan(ctx, &n); err != nil || n != 1 {
		t.Fatalf("ceremonies left %d (%v), want 1", n, err)
	}
}

// TestCleanupCeremoniesAndInvites: expired ceremonies go at once; expired
// or used-up invites go after the grace; live ones stay.
func TestCleanupCeremoniesAndInvites(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	s := openWithPublisher(t, nil, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	if err := s.CreateCeremony(ctx, &models.Ceremony{Kind: models.CeremonyLogin, SessionData: []byte(`{}`)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	short, _, _ := s.CreateInvite(ctx, NewInvite{Role: models.RoleMember, TTL: time.Hour, Uses: 1})
	long, _, _ := s.CreateInvite(ctx, NewInvite{Role: models.RoleMember, TTL: 30 * 24 * time.Hour, Uses: 1})
	used, _, _ := s.CreateInvite(ctx, NewInvite{Role: models.RoleMember, TTL: 30 * 24 * time.Hour, Uses: 1})
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := takeInviteUse(ctx, tx, models.HashInviteCode(used))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredCeremonies(ctx); err != nil || n != 0 {
		t.Fatalf("live ceremony deleted: %d %v", n, err)
	}
	advance(2 * time.Minute)
	if n, err := s.DeleteExpiredCeremonies(ctx); err != nil || n != 1 {
		t.Fatalf("expired ceremonies deleted %d %v", n, err)
	}
	advance(8 * 24 * time.Hour)
	if n, err := s.DeleteDeadInvites(ctx, 7*24*time.Hour); err != nil || n != 2 {
		t.Fatalf("dead invites deleted %d %v", n, err)
	}
	if _, err := s.CheckInvite(ctx, models.HashInviteCode(long)); err != nil {
		t.Fatalf("live invite gone: %v", err)
	}
	_ = short
}

// testGrant stores a step-up grant as CompleteStepUp does, without a
// passkey, and returns its token.
func testGrant(t *testing.T, s *Store, userID, sessionID string, op models.StepUpOperation, target string) string {
	t.Helper()
	token, hash := models.NewToken()
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		_, err := tx.NewRaw(`INSERT INTO ceremonies (id, kind, user_id, session_data, payload, created_at, expires_at) VALUES (?, ?, ?, '{}', ?, ?, ?)`,
			grantID(hash), string(models.CeremonyStepUpGrant), userID,
			[]byte(`{"operation":"`+string(op)+`","target":"`+target+`","session_id":"`+sessionID+`"}`),
			models.Millis(tx.Now()), models.Millis(tx.Now().Add(time.Minute))).Exec(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return token
}
