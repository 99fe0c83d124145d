package push_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/egress"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/push"
	"github.com/sovereign-im/sovereign/push/pushtest"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// env is a store with push on, the hub, a worker and a real push service.
type env struct {
	t        *testing.T
	path     string
	database string // a PostgreSQL URL, or "" for the SQLite file at path
	hub      *realtime.Hub
	st       *store.Store
	worker   *push.Worker
	rx       *pushtest.Server
	vapid    push.VAPID
	minGap   time.Duration
}

const waitFor = 60 * time.Second // generous: the machine is shared

func newEnv(t *testing.T, minGap time.Duration) *env {
	e := &env{t: t, path: filepath.Join(t.TempDir(), "data", "sovereign.db"), rx: pushtest.New(t), minGap: minGap}
	e.open(true)
	return e
}

// open opens the store (and starts the worker when withWorker).
func (e *env) open(withWorker bool) {
	t := e.t
	e.hub = realtime.New(realtime.Options{})
	st, err := store.Open(context.Background(), store.Options{Path: e.path, Database: e.database, Publisher: e.hub, PushOnline: e.hub.Online,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	if e.vapid, err = push.LoadVAPID(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	e.rx.ExpectVAPIDKey(e.vapid.Public)
	if withWorker {
		e.startWorker()
	}
	t.Cleanup(e.close)
}

func (e *env) startWorker() {
	// The test push service listens on 127.0.0.1: the operator allows it,
	// as --push-allow-hosts would.
	e.worker = push.NewWorker(e.st, e.vapid, push.Config{Contact: "mailto:ops@example.org", Online: e.hub.Online, MinGap: e.minGap,
		Policy: &egress.Policy{AllowHosts: []string{"127.0.0.1"}, RootCAs: e.rx.RootCAs()}, Log: slog.New(slog.DiscardHandler)})
	if err := e.worker.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) close() {
	if e.worker != nil {
		e.worker.Stop()
		e.worker = nil
	}
	if e.st != nil {
		e.hub.Close()
		_ = e.st.Close()
		e.st = nil
	}
}

func (e *env) device(name string) string {
	var id string
	err := e.st.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		uid, err := store.InsertUser(ctx, tx, name, name, models.RoleMember)
		if err != nil {
			return err
		}
		id, err = store.InsertDevice(ctx, tx, uid, name+"'s phone")
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) subscribe(deviceID string) *pushtest.Subscription {
	sub := e.rx.Subscribe()
	if _, err := e.st.SavePushSubscription(context.Background(), store.PushSubscription{DeviceID: deviceID, Endpoint: sub.Endpoint,
		P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}); err != nil {
		e.t.Fatal(err)
	}
	return sub
}

func (e *env) outbox() int64 {
	ps, err := e.st.PushStats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return ps.Outbox
}

func (e *env) subscriptions() int64 {
	ps, err := e.st.PushStats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return ps.Subscriptions
}

// A message wakes the members that have a subscription and no open
// stream, never the sender; the push carries a constant encrypted wake-up
// and nothing that names the group, the sender or the content.
func TestPushOnlyToDevicesWithoutStream(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	alice, bob, carol, dave := e.device("alice"), e.device("bob"), e.device("carol"), e.device("dave")
	aliceSub, bobSub, carolSub := e.subscribe(alice), e.subscribe(bob), e.subscribe(carol)
	// carol has a stream open; dave has no subscription.
	stream := e.hub.Subscribe(carol, "")
	defer stream.Close(nil)

	groupID := []byte("secret-group-id-0123456789abcdef")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob, carol, dave); err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("meet me at the old mill at midnight")
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, plaintext); err != nil {
		t.Fatal(err)
	}
	e.rx.Wait(t, waitFor, "bob's push", func() bool { return len(e.rx.PushesFor(bobSub)) == 1 })
	e.rx.Wait(t, waitFor, "the outbox to drain", func() bool { return e.outbox() == 0 })

	if n := len(e.rx.PushesFor(aliceSub)); n != 0 {
		t.Errorf("the sender got %d pushes", n)
	}
	if n := len(e.rx.PushesFor(carolSub)); n != 0 {
		t.Errorf("the device with an open stream got %d pushes", n)
	}
	if f := e.rx.Failures(); len(f) > 0 {
		t.Fatalf("the push service refused pushes: %v", f)
	}
	p := e.rx.PushesFor(bobSub)[0]
	if !bytes.Equal(p.Plaintext, push.Payload) {
		t.Errorf("payload %q, want %q", p.Plaintext, push.Payload)
	}
	if p.Urgency != "high" || p.Topic != push.Topic || p.TTL != int(push.TTLHigh/time.Second) {
		t.Errorf("urgency %q topic %q ttl %d", p.Urgency, p.Topic, p.TTL)
	}
	if p.VAPIDKey != e.vapid.Public || p.Claims["sub"] != "mailto:ops@example.org" {
		t.Errorf("vapid key %q sub %v", p.VAPIDKey, p.Claims["sub"])
	}
	// Nothing the push service sees names the group, the sender or the
	// content: not the headers, not the claims, not the (encrypted) body
	// size, which is the same fixed record for every push.
	var seen strings.Builder
	for k, vs := range p.Headers {
		seen.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	for k, v := range p.Claims {
		fmt.Fprintf(&seen, "%s=%v\n", k, v)
	}
	seen.Write(p.Plaintext)
	for _, secret := range []string{string(groupID), hex.EncodeToString(groupID), base64.StdEncoding.EncodeToString(groupID),
		base64.RawURLEncoding.EncodeToString(groupID), alice, bob, "alice", string(plaintext), "old mill"} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("the push reveals %q:\n%s", secret, seen.String())
		}
	}
	if p.BodyLen != 4096 {
		t.Errorf("encrypted body is %d bytes, want the fixed 4096-byte record", p.BodyLen)
	}
}

// A burst of 100 messages to an absent device gives at most three pushes.
func TestBurstIsCoalesced(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	ctx := context.Background()
	alice, bob := e.device("alice"), e.device("bob")
	bobSub := e.subscribe(bob)
	groupID := []byte("burst-group")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	e.rx.Wait(t, waitFor, "a push", func() bool { return len(e.rx.PushesFor(bobSub)) >= 1 })
	e.rx.Wait(t, waitFor, "the outbox to drain", func() bool { return e.outbox() == 0 })
	n := len(e.rx.PushesFor(bobSub))
	t.Logf("100 messages -> %d pushes", n)
	if n > 3 {
		t.Fatalf("100 messages gave %d pushes, want at most 3", n)
	}
	// Pushes to one device are MinGap apart.
	ps := e.rx.PushesFor(bobSub)
	for i := 1; i < len(ps); i++ {
		if gap := ps[i].At.Sub(ps[i-1].At); gap < 2*time.Second-100*time.Millisecond {
			t.Errorf("pushes %d and %d are %s apart, want at least 2s", i-1, i, gap)
		}
	}
}

// The outbox row is committed with the event: a server that stops between
// commit and send sends the push after it starts again.
func TestOutboxSurvivesRestart(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	alice, bob := e.device("alice"), e.device("bob")
	bobSub := e.subscribe(bob)
	groupID := []byte("restart-group")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
		t.Fatal(err)
	}
	// Stop the worker, commit a message, stop the server before any send.
	e.worker.Stop()
	e.worker = nil
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if n := e.outbox(); n != 1 {
		t.Fatalf("outbox holds %d rows after commit, want 1", n)
	}
	e.close()
	if n := len(e.rx.Pushes()); n != 0 {
		t.Fatalf("%d pushes before the restart", n)
	}
	e.open(true)
	e.rx.Wait(t, waitFor, "the push after the restart", func() bool { return len(e.rx.PushesFor(bobSub)) == 1 })
	e.rx.Wait(t, waitFor, "the outbox to drain", func() bool { return e.outbox() == 0 })
}

// 404/410 from the push service deletes the subscription: no more pushes.
func TestGoneDeletesSubscription(t *testing.T) {
	for _, status := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newEnv(t, time.Second)
			ctx := context.Background()
			alice, bob := e.device("alice"), e.device("bob")
			e.subscribe(bob)
			e.rx.Respond(func(string, int) pushtest.Response { return pushtest.Response{Status: status} })
			groupID := []byte("gone-group")
			feed := testutil.Feed{St: e.st}
			if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
				t.Fatal(err)
			}
			if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("x")); err != nil {
				t.Fatal(err)
			}
			e.rx.Wait(t, waitFor, "the subscription to be deleted", func() bool { return e.subscriptions() == 0 && e.outbox() == 0 })
			if _, err := e.st.PushSubscriptionOf(ctx, bob); err == nil {
				t.Fatal("subscription still there")
			}
			// Later messages queue nothing.
			if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("y")); err != nil {
				t.Fatal(err)
			}
			if n := e.outbox(); n != 0 {
				t.Fatalf("outbox %d after the subscription was deleted", n)
			}
			if n := len(e.rx.Pushes()); n != 1 {
				t.Fatalf("%d pushes, want 1", n)
			}
		})
	}
}

// 429 and 5xx are retried, after Retry-After when given.
func TestRetryHonoursRetryAfter(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	alice, bob := e.device("alice"), e.device("bob")
	bobSub := e.subscribe(bob)
	e.rx.Respond(func(_ string, n int) pushtest.Response {
		switch n {
		case 1:
			return pushtest.Response{Status: http.StatusTooManyRequests, RetryAfter: "2"}
		case 2:
			return pushtest.Response{Status: http.StatusServiceUnavailable}
		}
		return pushtest.Response{Status: http.StatusCreated}
	})
	groupID := []byte("retry-group")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.rx.Wait(t, waitFor, "three attempts", func() bool { return len(e.rx.PushesFor(bobSub)) >= 3 })
	e.rx.Wait(t, waitFor, "the outbox to drain", func() bool { return e.outbox() == 0 })
	ps := e.rx.PushesFor(bobSub)
	if len(ps) != 3 || ps[2].Status != http.StatusCreated {
		t.Fatalf("%d attempts, last status %d; want 3 ending in 201", len(ps), ps[len(ps)-1].Status)
	}
	if gap := ps[1].At.Sub(ps[0].At); gap < 2*time.Second-100*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 2", gap)
	}
	if e.subscriptions() != 1 {
		t.Fatal("a temporary failure deleted the subscription")
	}
}

// A stored endpoint that is not allowed (here loopback under another name)
// is refused when the worker connects, and the subscription is deleted.
func TestWorkerRefusesNonPublicEndpoint(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	alice, bob := e.device("alice"), e.device("bob")
	sub := e.rx.Subscribe()
	// Stored directly (the API would have refused it): localhost is not
	// on the allow list, and it resolves to loopback.
	endpoint := strings.Replace(sub.Endpoint, "127.0.0.1", "localhost", 1)
	if _, err := e.st.SavePushSubscription(ctx, store.PushSubscription{DeviceID: bob, Endpoint: endpoint, P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}); err != nil {
		t.Fatal(err)
	}
	groupID := []byte("ssrf-group")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.rx.Wait(t, waitFor, "the refused subscription to be deleted", func() bool { return e.subscriptions() == 0 && e.outbox() == 0 })
	if n := len(e.rx.Pushes()); n != 0 {
		t.Fatalf("the push service was reached %d times", n)
	}
}

// A revoked device loses its subscription in the revoking transaction.
func TestRevokedDeviceGetsNoPush(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx := context.Background()
	alice, bob := e.device("alice"), e.device("bob")
	e.subscribe(bob)
	var bobUser string
	if err := e.st.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		return tx.NewRaw(`SELECT user_id FROM devices WHERE id = ?`, bob).Scan(ctx, &bobUser)
	}); err != nil {
		t.Fatal(err)
	}
	groupID := []byte("revoke-group")
	feed := testutil.Feed{St: e.st}
	if err := feed.CreateGroup(ctx, groupID, alice, bob); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RevokeDevice(ctx, bobUser, bob); err != nil {
		t.Fatal(err)
	}
	if e.subscriptions() != 0 {
		t.Fatal("the revoked device kept its subscription")
	}
	if _, err := feed.Send(ctx, groupID, alice, models.KindApplication, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if e.outbox() != 0 {
		t.Fatal("a push was queued for a revoked device")
	}
}

// The VAPID key is derived from the stored server secret: the same after a
// restart.
func TestVAPIDKeyStable(t *testing.T) {
	e := newEnv(t, time.Second)
	first := e.vapid
	e.close()
	e.open(false)
	if e.vapid != first {
		t.Fatal("the VAPID key changed across a restart")
	}
	raw, err := base64.RawURLEncoding.DecodeString(first.Public)
	if err != nil || len(raw) != 65 || raw[0] != 4 {
		t.Fatalf("public key %q is not an uncompressed P-256 point", first.Public)
	}
}
