package gosdk_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/clients/go/sovereign"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/testutil"
)

// proxy is a reverse proxy in front of the real server that can misbehave
// the way proxies do in the field: refuse event streams, or pass a
// stream's headers and then hold its events back.
type proxy struct {
	*httptest.Server
	mu          sync.Mutex
	refuseSSE   bool // answer /v1/events with an HTML page
	silenceSSE  bool // send /v1/events headers, then nothing
	dropReplies int  // forward this many message sends, then cut the connection before the answer
	eventsSeen  atomic.Int32
	lastEventID []string
	sends       atomic.Int32
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &proxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		refuse, silence := p.refuseSSE, p.silenceSSE
		drop := false
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages") {
			p.sends.Add(1)
			if p.dropReplies > 0 {
				p.dropReplies--
				drop = true
			}
		}
		if r.URL.Path == "/v1/events" {
			p.eventsSeen.Add(1)
			p.lastEventID = append(p.lastEventID, r.Header.Get("Last-Event-ID"))
		}
		p.mu.Unlock()
		switch {
		case r.URL.Path == "/v1/events" && refuse:
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>streaming is not allowed here</html>"))
		case r.URL.Path == "/v1/events" && silence:
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		case drop:
			// The server stores the message; the client never hears.
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("proxy cannot hijack")
				return
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { p.CloseClientConnections(); p.Close() })
	return p
}

func (p *proxy) set(f func(p *proxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// TestStreamResumesWithLastEventID cuts every connection while messages
// are being sent: the stream reconnects with Last-Event-ID and delivers
// every message exactly once, in order.
func TestStreamResumesWithLastEventID(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.URL)
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	bob := signUp(t, ctx, srv, p.URL, "bob")
	uploadKeyPackages(t, ctx, bob, 2)
	gid := groupWith(t, ctx, alice, bob)

	var statuses []sovereign.StreamStatus
	var smu sync.Mutex
	st := bob.s.Stream(ctx, sovereign.StreamOptions{
		Transport: sovereign.TransportSSE, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnStatus: func(s sovereign.StreamStatus) { smu.Lock(); statuses = append(statuses, s); smu.Unlock() },
	})
	defer st.Close()
	if w := next(t, st, "welcome"); w.Kind != sovereign.EventBodyKindWelcome {
		t.Fatalf("first event %+v", w)
	}

	const n = 30
	want := make([]int64, 0, n)
	for i := range n {
		r, err := alice.s.Send(ctx, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, padded))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Seq)
		if i%7 == 3 {
			p.CloseClientConnections() // the stream drops mid-feed
		}
	}
	for i := range n {
		ev := next(t, st, "message")
		if ev.Seq != want[i] {
			t.Fatalf("event %d: seq %d, want %d (no gap, no duplicate)", i, ev.Seq, want[i])
		}
	}
	if p.eventsSeen.Load() < 2 {
		t.Fatalf("the stream never reconnected (%d connections)", p.eventsSeen.Load())
	}
	p.mu.Lock()
	ids := append([]string(nil), p.lastEventID...)
	p.mu.Unlock()
	for _, id := range ids[1:] {
		if id == "" || id == "0" {
			t.Fatalf("a reconnect without Last-Event-ID: %q", ids)
		}
	}
	smu.Lock()
	defer smu.Unlock()
	drops := 0
	for _, s := range statuses {
		if !s.Connected && s.Err != nil {
			drops++
		}
	}
	if drops == 0 {
		t.Fatal("OnStatus never reported a dropped connection")
	}
}

// TestStreamFallsBackToLongPoll puts a proxy that refuses event streams in
// the way: the stream switches to long-poll at once and delivers.
func TestStreamFallsBackToLongPoll(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.URL)
	p.set(func(p *proxy) { p.refuseSSE = true })
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	bob := signUp(t, ctx, srv, p.URL, "bob")
	uploadKeyPackages(t, ctx, bob, 2)
	gid := groupWith(t, ctx, alice, bob)

	st := bob.s.Stream(ctx, sovereign.StreamOptions{PollTimeout: 2 * time.Second, MinBackoff: 10 * time.Millisecond})
	defer st.Close()
	if w := next(t, st, "welcome"); w.Kind != sovereign.EventBodyKindWelcome {
		t.Fatalf("first event %+v", w)
	}
	r, err := alice.s.Send(ctx, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, padded))
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, st, "message over long-poll"); ev.Seq != r.Seq {
		t.Fatalf("got seq %d, want %d", ev.Seq, r.Seq)
	}
	if st.Transport() != sovereign.TransportLongPoll {
		t.Fatalf("transport %s", st.Transport())
	}
	if n := p.eventsSeen.Load(); n != 1 {
		t.Fatalf("%d SSE attempts; a refused stream should switch at once", n)
	}
}

// TestStreamIdleReconnectsThenFallsBack: a proxy passes the stream's
// headers and then nothing, not even the server's pings. The idle watchdog
// reopens the stream, and after the configured failures the stream
// switches to long-poll.
func TestStreamIdleReconnectsThenFallsBack(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.URL)
	p.set(func(p *proxy) { p.silenceSSE = true })
	bob := signUp(t, ctx, srv, p.URL, "bob")
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	uploadKeyPackages(t, ctx, bob, 2)

	st := bob.s.Stream(ctx, sovereign.StreamOptions{
		IdleTimeout: 300 * time.Millisecond, SSEFailuresBeforeFallback: 2, PollTimeout: 2 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	defer st.Close()
	groupWith(t, ctx, alice, bob)
	if w := next(t, st, "welcome"); w.Kind != sovereign.EventBodyKindWelcome {
		t.Fatalf("first event %+v", w)
	}
	if st.Transport() != sovereign.TransportLongPoll || p.eventsSeen.Load() != 2 {
		t.Fatalf("transport %s after %d silent streams", st.Transport(), p.eventsSeen.Load())
	}
}

// TestStreamAutoAckAndResumeFromAcked: with AutoAck, finishing with an
// event (asking for the next) acknowledges it; Close sends the last ack; a
// new stream FromAcked starts right after it.
func TestStreamAutoAckAndResumeFromAcked(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	bob := signUp(t, ctx, srv, srv.URL, "bob")
	uploadKeyPackages(t, ctx, bob, 2)
	gid := groupWith(t, ctx, alice, bob)
	var seqs []int64
	for range 3 {
		r, err := alice.s.Send(ctx, gid, mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, padded))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
	}

	st := bob.s.Stream(ctx, sovereign.StreamOptions{FromAcked: true, AutoAck: true, AckDelay: 10 * time.Millisecond})
	next(t, st, "welcome")
	next(t, st, "message 1")
	if ev := next(t, st, "message 2"); ev.Seq != seqs[1] {
		t.Fatalf("seq %d", ev.Seq)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if st.Acked() != seqs[1] {
		t.Fatalf("acked %d, want %d (the last event handed out)", st.Acked(), seqs[1])
	}
	if _, err := st.Next(ctx); !errors.Is(err, sovereign.ErrStreamClosed) {
		t.Fatalf("next after close: %v", err)
	}

	again := bob.s.Stream(ctx, sovereign.StreamOptions{FromAcked: true, Transport: sovereign.TransportLongPoll, PollTimeout: time.Second})
	defer again.Close()
	if ev := next(t, again, "first event after the acked cursor"); ev.Seq != seqs[2] {
		t.Fatalf("resumed at seq %d, want %d", ev.Seq, seqs[2])
	}
}

// TestSendRetriesWithTheSameKey: the proxy forwards a send to the server
// and cuts the connection before the answer, twice. Send retries with the
// same Idempotency-Key, gets the first result, and the group holds the
// message once.
func TestSendRetriesWithTheSameKey(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.URL)
	alice := signUp(t, ctx, srv, p.URL, "alice")
	bob := signUp(t, ctx, srv, srv.URL, "bob")
	uploadKeyPackages(t, ctx, bob, 2)
	gid := groupWith(t, ctx, alice, bob)

	p.set(func(p *proxy) { p.dropReplies = 2 })
	msg := mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, padded)
	r, err := alice.s.Send(ctx, gid, msg)
	if err != nil {
		t.Fatalf("send through a flaky proxy: %v", err)
	}
	if n := p.sends.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	hist, err := bob.s.ListGroupMessagesWithResponse(ctx, sovereign.EncodeGroupID(gid), nil)
	must(t, "history", hist, err, http.StatusOK)
	count := 0
	for _, e := range *hist.JSON200.Events {
		if e.Kind == sovereign.EventBodyKindApplication {
			count++
			if e.Seq != r.Seq {
				t.Fatalf("stored seq %d, receipt %d", e.Seq, r.Seq)
			}
		}
	}
	if count != 1 {
		t.Fatalf("the message is stored %d times", count)
	}

	// Without the key's protection a retry would store a second copy: the
	// same bytes under a new key are a new message.
	if _, err := alice.s.Send(ctx, gid, msg); err != nil {
		t.Fatal(err)
	}
	hist, _ = bob.s.ListGroupMessagesWithResponse(ctx, sovereign.EncodeGroupID(gid), nil)
	if got := len(*hist.JSON200.Events); got < 2 {
		t.Fatalf("history has %d events", got)
	}
}
