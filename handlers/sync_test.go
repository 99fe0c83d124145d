package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// receiver connects over one transport from cursor, reads up to n events
// (stopping early after a quiet while), disconnects and returns them.
type receiver func(t *testing.T, fs *feedServer, token string, cursor int64, n int) []handlers.EventBody

func receiveSSE(t *testing.T, fs *feedServer, token string, cursor int64, n int) []handlers.EventBody {
	var st *sseStream
	var resp *http.Response
	if cursor > 0 && n%2 == 0 {
		st, resp = openSSE(t, fs.Server, token, "", "Last-Event-ID", strconv.FormatInt(cursor, 10))
	} else {
		st, resp = openSSE(t, fs.Server, token, "?after="+strconv.FormatInt(cursor, 10))
	}
	if st == nil {
		t.Fatalf("SSE status %d", resp.StatusCode)
	}
	defer st.close()
	var out []handlers.EventBody
	for len(out) < n {
		e, ok := st.next(t, 500*time.Millisecond)
		if !ok {
			break
		}
		out = append(out, e)
	}
	return out
}

func receiveLongPoll(t *testing.T, fs *feedServer, token string, cursor int64, n int) []handlers.EventBody {
	r := fs.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&limit=%d&timeout=1", cursor, n), token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("long-poll = %d %s", r.StatusCode, r.Body)
	}
	var b syncBody
	r.JSON(t, &b)
	if len(b.Events) > 0 && b.Next != b.Events[len(b.Events)-1].Seq || len(b.Events) == 0 && b.Next != cursor {
		t.Fatalf("next = %d for %d events after %d", b.Next, len(b.Events), cursor)
	}
	return b.Events
}

func receiveWS(t *testing.T, fs *feedServer, token string, cursor int64, n int) []handlers.EventBody {
	w, resp, err := dialWS(t, fs.Server, token, "?after="+strconv.FormatInt(cursor, 10))
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer w.c.CloseNow()
	var out []handlers.EventBody
	for len(out) < n {
		f, err := w.frame(t, 500*time.Millisecond)
		if err != nil {
			break
		}
		if f.Type != "events" {
			t.Fatalf("frame %+v", f)
		}
		out = append(out, f.Events...)
	}
	return out
}

// TestEveryTransportDeliversEachSeqOnceInOrder is the acceptance test: 5
// publishers × 200 messages into a group while one subscriber disconnects
// and resumes at random moments, over SSE, then long-poll, then WebSocket.
func TestEveryTransportDeliversEachSeqOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		recv receiver
	}{{"sse", receiveSSE}, {"long-poll", receiveLongPoll}, {"websocket", receiveWS}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFeedServer(t, 6)
			reader := fs.accs[5]
			const publishers, each = 5, 200
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Go(func() {
					for i := range each {
						if _, err := fs.feed.Send(context.Background(), fs.group, fs.accs[p].DeviceID, models.KindApplication, []byte(fmt.Sprintf("%d-%d", p, i))); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			published := make(chan struct{})
			go func() { wg.Wait(); close(published) }()

			rng := rand.New(rand.NewPCG(7, 7))
			var got []int64
			seen := map[string]bool{}
			cursor := int64(0)
			quietAfterDone := 0
			for len(got) < publishers*each && quietAfterDone < 3 {
				evs := tc.recv(t, fs, reader.Token, cursor, 1+rng.IntN(150))
				for _, e := range evs {
					if e.Seq <= cursor {
						t.Fatalf("seq %d not after cursor %d (duplicate or out of order)", e.Seq, cursor)
					}
					if seen[e.ID] {
						t.Fatalf("message %s delivered twice", e.ID)
					}
					seen[e.ID] = true
					cursor = e.Seq
					got = append(got, e.Seq)
				}
				select {
				case <-published:
					if len(evs) == 0 {
						quietAfterDone++
					}
				default:
				}
			}
			<-published
			want, _, err := fs.Store.Feed(context.Background(), reader.DeviceID, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != publishers*each || len(want) != publishers*each {
				t.Fatalf("received %d, feed holds %d, want %d", len(got), len(want), publishers*each)
			}
			for i := range want {
				if got[i] != want[i].Seq {
					t.Fatalf("event %d = seq %d, want %d", i, got[i], want[i].Seq)
				}
			}
		})
	}
}

func TestSSEStreamHeadersPingsAndResume(t *testing.T) {
	fs := newFeedServer(t, 2, func(c *config.Config) { c.Limits.HeartbeatInterval = time.Second })
	tok := fs.accs[1].Token
	e1 := fs.send(t, 0, "one")
	e2 := fs.send(t, 0, "two")

	st, resp := openSSE(t, fs.Server, tok, "")
	if st == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for h, want := range map[string]string{"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Content-Type": "text/event-stream"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	got, _ := st.next(t, 5*time.Second)
	if got.Seq != e1.Seq || string(got.Payload) != "one" || got.Kind != "application" || got.ID != e1.ID ||
		got.SenderDeviceID != fs.accs[0].DeviceID || got.Epoch == nil || *got.Epoch != 0 || got.GroupID != "Z3JvdXAtb25l" {
		t.Fatalf("first event = %+v", got)
	}
	if !got.ServerTime.Equal(e1.ServerTime) {
		t.Errorf("server_time %v, want %v", got.ServerTime, e1.ServerTime)
	}
	if got, _ := st.next(t, 5*time.Second); got.Seq != e2.Seq {
		t.Fatalf("second = %d", got.Seq)
	}
	// A ping within the heartbeat interval (+ slack).
	deadline := time.After(5 * time.Second)
	for pinged := false; !pinged; {
		select {
		case e := <-st.events:
			pinged = e.Event == "ping" && e.ID == "" && strings.Contains(e.Data, `"time"`)
		case <-deadline:
			t.Fatal("no ping")
		}
	}
	// A live event arrives on the open stream.
	e3 := fs.send(t, 0, "three")
	if got, _ := st.next(t, 5*time.Second); got.Seq != e3.Seq {
		t.Fatalf("live = %d, want %d", got.Seq, e3.Seq)
	}
	st.close()

	// Last-Event-ID wins over ?after=.
	st2, _ := openSSE(t, fs.Server, tok, "?after=0", "Last-Event-ID", strconv.FormatInt(e2.Seq, 10))
	if got, _ := st2.next(t, 5*time.Second); got.Seq != e3.Seq {
		t.Fatalf("resume after Last-Event-ID %d gave %d", e2.Seq, got.Seq)
	}
	st2.close()

	// Without a cursor the stream starts after the device's ack.
	if r := fs.Do(t, "POST", "/v1/sync/ack", tok, map[string]any{"seq": e2.Seq}); r.StatusCode != 200 {
		t.Fatalf("ack = %d %s", r.StatusCode, r.Body)
	}
	st3, _ := openSSE(t, fs.Server, tok, "")
	if got, _ := st3.next(t, 5*time.Second); got.Seq != e3.Seq {
		t.Fatalf("resume from ack gave %d", got.Seq)
	}

	// Malformed cursors are refused.
	for _, q := range []struct{ query, header string }{{"?after=-1", ""}, {"?after=x", ""}, {"", "abc"}} {
		var hdr []string
		if q.header != "" {
			hdr = []string{"Last-Event-ID", q.header}
		}
		r := fs.Do(t, "GET", "/v1/events"+q.query, tok, nil, hdr...)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%v = %d %s", q, r.StatusCode, r.Body)
		}
	}
	if r := fs.Do(t, "GET", "/v1/events", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token = %d", r.StatusCode)
	}
}

func TestLongPoll(t *testing.T) {
	fs := newFeedServer(t, 2)
	tok := fs.accs[1].Token
	var evs []*models.Event
	for i := range 5 {
		evs = append(evs, fs.send(t, 0, strconv.Itoa(i)))
	}

	t.Run("backlog returns at once, paged with has_more", func(t *testing.T) {
		start := time.Now()
		r := fs.Do(t, "GET", "/v1/sync?after=0&limit=3&timeout=30", tok, nil)
		var b syncBody
		r.JSON(t, &b)
		if time.Since(start) > 2*time.Second || len(b.Events) != 3 || !b.HasMore || b.Next != evs[2].Seq {
			t.Fatalf("took %v: %+v", time.Since(start), b)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", r.Header.Get("Cache-Control"))
		}
		r = fs.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&limit=3&timeout=30", b.Next), tok, nil)
		r.JSON(t, &b)
		if len(b.Events) != 2 || b.HasMore || b.Next != evs[4].Seq {
			t.Fatalf("second page %+v", b)
		}
	})

	t.Run("timeout answers empty", func(t *testing.T) {
		start := time.Now()
		r := fs.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&timeout=1", evs[4].Seq), tok, nil)
		var b syncBody
		r.JSON(t, &b)
		if d := time.Since(start); r.StatusCode != 200 || len(b.Events) != 0 || b.Next != evs[4].Seq || b.HasMore || d < 900*time.Millisecond {
			t.Fatalf("after %v: %d %+v", d, r.StatusCode, b)
		}
	})

	// Woken by the publish, not by a poll: the fastest of five rounds is
	// within 100 ms (a timer-driven poll would not be), and none waits
	// anywhere near the 30 s timeout. Under a loaded race build single rounds
	// can be slow, so the bound is on the best round.
	t.Run("a waiting poll is woken by the publish", func(t *testing.T) {
		var delays []time.Duration
		for range 5 {
			cur, _ := fs.Store.FeedHead(context.Background(), fs.accs[1].DeviceID)
			type result struct {
				at time.Time
				b  syncBody
			}
			ch := make(chan result, 1)
			go func() {
				r := fs.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&timeout=30", cur), tok, nil)
				var b syncBody
				_ = json.Unmarshal(r.Body, &b)
				ch <- result{time.Now(), b}
			}()
			waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 1 })
			// The commit is durable when Send returns; the publish happens in
			// the writer right before.
			e := fs.send(t, 0, "wake")
			published := time.Now()
			res := <-ch
			if len(res.b.Events) != 1 || res.b.Events[0].Seq != e.Seq {
				t.Fatalf("woken with %+v", res.b)
			}
			d := res.at.Sub(published)
			if d > 5*time.Second {
				t.Errorf("woke %v after the publish", d)
			}
			delays = append(delays, d)
		}
		slices.Sort(delays)
		t.Logf("woken after the publish: %v", delays)
		if delays[0] > 100*time.Millisecond {
			t.Errorf("fastest wake-up %v after the publish", delays[0])
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"timeout=61", "limit=0", "limit=1001", "after=-1"} {
			if r := fs.Do(t, "GET", "/v1/sync?"+q, tok, nil); r.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("%s = %d", q, r.StatusCode)
			}
		}
		if r := fs.Do(t, "GET", "/v1/sync?after=999999", tok, nil); r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "cursor_ahead") {
			t.Errorf("cursor ahead = %d %s", r.StatusCode, r.Body)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAckRetentionAnd410(t *testing.T) {
	fs := newFeedServer(t, 2)
	a, b := fs.accs[0], fs.accs[1]
	e1 := fs.send(t, 0, "one")
	e2 := fs.send(t, 0, "two")
	e3 := fs.send(t, 0, "three")

	r := fs.Do(t, "POST", "/v1/sync/ack", b.Token, map[string]any{"seq": e3.Seq + 1})
	if r.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "ack_beyond_head") {
		t.Fatalf("ack beyond head = %d %s", r.StatusCode, r.Body)
	}
	for _, acc := range []testutil.Account{a, b} {
		r = fs.Do(t, "POST", "/v1/sync/ack", acc.Token, map[string]any{"seq": e2.Seq})
		var out struct {
			AckedSeq int64 `json:"acked_seq"`
		}
		r.JSON(t, &out)
		if r.StatusCode != 200 || out.AckedSeq != e2.Seq {
			t.Fatalf("ack = %d %s", r.StatusCode, r.Body)
		}
	}
	r = fs.Do(t, "POST", "/v1/sync/ack", b.Token, map[string]any{"seq": e1.Seq})
	if !strings.Contains(string(r.Body), fmt.Sprintf(`"acked_seq":%d`, e2.Seq)) {
		t.Fatalf("ack went backwards: %s", r.Body)
	}
	// The server's own cleanup runner prunes what both devices acked.
	pruned := false
	for _, res := range fs.App.Maintenance().RunOnce(context.Background()) {
		if res.Name == "acked_events" {
			pruned = res.Err == nil && res.Removed == 2
		}
	}
	if !pruned {
		t.Fatal("acked_events did not delete the two acked events")
	}
	// Resuming across deleted events: 410 with what to resync, on every door.
	r = fs.Do(t, "GET", "/v1/sync?after=0&timeout=0", b.Token, nil)
	var p handlers.Problem
	r.JSON(t, &p)
	if r.StatusCode != http.StatusGone || p.Code != "cursor_expired" || p.Resync == nil ||
		p.Resync.ResumeAfter != e3.Seq || len(p.Resync.Groups) != 1 || p.Resync.Groups[0].GroupID != "Z3JvdXAtb25l" {
		t.Fatalf("410 = %d %s", r.StatusCode, r.Body)
	}
	if st, resp := openSSE(t, fs.Server, b.Token, "?after=0"); st != nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("SSE after=0 = %d", resp.StatusCode)
	}
	if _, resp, err := dialWS(t, fs.Server, b.Token, "?after=0"); err == nil || resp == nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("WS after=0 = %v", err)
	}
	// From the ack on, all is there.
	r = fs.Do(t, "GET", fmt.Sprintf("/v1/sync?after=%d&timeout=0", e2.Seq), b.Token, nil)
	var sb syncBody
	r.JSON(t, &sb)
	if len(sb.Events) != 1 || sb.Events[0].Seq != e3.Seq {
		t.Fatalf("after ack: %s", r.Body)
	}
}

func TestStreamLimitPerIP(t *testing.T) {
	fs := newFeedServer(t, 1)
	tok := fs.accs[0].Token
	var streams []*sseStream
	start := time.Now()
	for i := range 10 {
		st, resp := openSSE(t, fs.Server, tok, "")
		if st == nil {
			t.Fatalf("stream %d = %d", i+1, resp.StatusCode)
		}
		streams = append(streams, st)
	}
	// Headers are sent at once, not with the first event or ping (15 s).
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("opening 10 idle streams took %v", d)
	}
	r := fs.Do(t, "GET", "/v1/events", tok, nil)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("11th SSE = %d (Retry-After %q) %s", r.StatusCode, r.Header.Get("Retry-After"), r.Body)
	}
	if _, resp, err := dialWS(t, fs.Server, tok, ""); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th WS = %v", err)
	}
	r = fs.Do(t, "GET", "/v1/sync?timeout=5", tok, nil)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("waiting long-poll = %d", r.StatusCode)
	}
	// A long-poll with events waiting does not need a slot.
	e := fs.send(t, 0, "x")
	r = fs.Do(t, "GET", "/v1/sync?after=0&timeout=5", tok, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), e.ID) {
		t.Fatalf("long-poll with backlog = %d", r.StatusCode)
	}
	streams[0].close()
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 9 })
	if st, resp := openSSE(t, fs.Server, tok, ""); st == nil {
		t.Fatalf("after closing one: %d", resp.StatusCode)
	}
}

func TestStreamsEndWhenTheSessionEnds(t *testing.T) {
	fs := newFeedServer(t, 1, func(c *config.Config) { c.Limits.HeartbeatInterval = time.Second })
	acc := fs.accs[0]
	sid := fs.sessionID(t, acc.Token)

	sse, _ := openSSE(t, fs.Server, acc.Token, "")
	ws, _, err := dialWS(t, fs.Server, acc.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 2 })
	pollDone := make(chan int, 1)
	go func() {
		r := fs.Do(t, "GET", "/v1/sync?timeout=30", acc.Token, nil)
		pollDone <- r.StatusCode
	}()
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 3 })

	// What the accounts service does when it revokes the session.
	if err := fs.Store.Write(context.Background(), func(ctx context.Context, tx *storeTx) error {
		_, err := tx.NewRaw(`UPDATE sessions SET revoked_at = 1 WHERE id = ?`, sid).Exec(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ended := time.Now()
	fs.App.Hub().SessionsEnded([]string{sid})
	select {
	case <-sse.done:
	case <-time.After(time.Second):
		t.Fatal("SSE stream still open 1 s after the session ended")
	}
	_, err = ws.frame(t, time.Second)
	if websocket.CloseStatus(err) != handlers.WSCloseSessionEnded {
		t.Fatalf("WS closed with %v", err)
	}
	select {
	case code := <-pollDone:
		if code != http.StatusUnauthorized {
			t.Fatalf("waiting long-poll answered %d", code)
		}
	case <-time.After(time.Second):
		t.Fatal("long-poll still waiting")
	}
	t.Logf("streams ended %v after SessionsEnded", time.Since(ended))
	if r := fs.Do(t, "GET", "/v1/events", acc.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnect = %d", r.StatusCode)
	}
}

func TestStreamsEndOnRevocationWithoutNotice(t *testing.T) {
	// Defence in depth: a revocation the hub was not told about still ends
	// the stream at the next heartbeat.
	fs := newFeedServer(t, 1, func(c *config.Config) { c.Limits.HeartbeatInterval = time.Second })
	acc := fs.accs[0]
	sse, _ := openSSE(t, fs.Server, acc.Token, "")
	if err := fs.Store.Write(context.Background(), func(ctx context.Context, tx *storeTx) error {
		_, err := tx.NewRaw(`UPDATE users SET disabled_at = 1`).Exec(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sse.done:
	case <-time.After(4 * time.Second):
		t.Fatal("stream of a disabled user still open")
	}
}

func TestStreamsEndAtSessionExpiryAndShutdown(t *testing.T) {
	fs := newFeedServer(t, 1)
	acc := fs.accs[0]
	sse, _ := openSSE(t, fs.Server, acc.Token, "")
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 1 })
	fs.Clock.Advance(fs.Config.SessionTTL)
	select {
	case <-sse.done:
	case <-time.After(3 * time.Second):
		t.Fatal("stream open after the session expired")
	}

	fs2 := newFeedServer(t, 1)
	sse2, _ := openSSE(t, fs2.Server, fs2.accs[0].Token, "")
	waitFor(t, func() bool { return fs2.App.Hub().Stats().Subscriptions == 1 })
	_ = fs2.App.Close()
	select {
	case <-sse2.done:
	case <-time.After(2 * time.Second):
		t.Fatal("stream open after shutdown")
	}
}

func TestRemovedDeviceGetsTheRemovingCommitThenNothing(t *testing.T) {
	fs := newFeedServer(t, 2)
	bob := fs.accs[1]
	sse, _ := openSSE(t, fs.Server, bob.Token, "")
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 1 })
	e1 := fs.send(t, 0, "before")
	commit, err := fs.feed.Remove(context.Background(), fs.group, fs.accs[0].DeviceID, bob.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	fs.send(t, 0, "after")
	if got, _ := sse.next(t, 5*time.Second); got.Seq != e1.Seq {
		t.Fatalf("first = %d", got.Seq)
	}
	if got, _ := sse.next(t, 5*time.Second); got.Seq != commit.Seq || got.Kind != "commit" {
		t.Fatalf("second = %+v, want the removing commit", got)
	}
	if got, ok := sse.next(t, 500*time.Millisecond); ok {
		t.Fatalf("removed device received %+v", got)
	}
	r := fs.Do(t, "GET", "/v1/sync?after=0&timeout=0", bob.Token, nil)
	var b syncBody
	r.JSON(t, &b)
	if len(b.Events) != 2 || b.Events[1].Seq != commit.Seq {
		t.Fatalf("long-poll feed = %s", r.Body)
	}
}

func TestWebSocketAcksAndRejectsGarbage(t *testing.T) {
	fs := newFeedServer(t, 2)
	tok := fs.accs[1].Token
	e1 := fs.send(t, 0, "one")
	w, _, err := dialWS(t, fs.Server, tok, "?after=0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := w.frame(t, 5*time.Second)
	if err != nil || f.Type != "events" || len(f.Events) != 1 || f.Events[0].Seq != e1.Seq || string(f.Events[0].Payload) != "one" {
		t.Fatalf("frame %+v %v", f, err)
	}
	ctx := context.Background()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"ack","seq":%d}`, e1.Seq))); err != nil {
		t.Fatal(err)
	}
	f, err = w.frame(t, 5*time.Second)
	if err != nil || f.Type != "acked" || f.AckedSeq == nil || *f.AckedSeq != e1.Seq {
		t.Fatalf("ack reply %+v %v", f, err)
	}
	if err := w.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","seq":99999}`)); err != nil {
		t.Fatal(err)
	}
	f, err = w.frame(t, 5*time.Second)
	if err != nil || f.Type != "error" || f.Code != "ack_beyond_head" {
		t.Fatalf("bad ack reply %+v %v", f, err)
	}
	if err := w.c.Write(ctx, websocket.MessageText, []byte(`hello`)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.frame(t, 5*time.Second); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("garbage answered with %v", err)
	}
	if _, resp, err := dialWS(t, fs.Server, "", ""); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
}

// TestStuckSubscriberDoesNotDelayOthers: a client that never reads its SSE
// stream does not delay another's delivery, its buffer stays bounded, and
// the server disconnects it; it then resumes from its cursor.
func TestStuckSubscriberDoesNotDelayOthers(t *testing.T) {
	fs := newFeedServer(t, 3)
	stuck, reader := fs.accs[1], fs.accs[2]

	// A raw connection that sends the request and never reads.
	conn, err := net.Dial("tcp", strings.TrimPrefix(fs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", stuck.Token)
	live, _ := openSSE(t, fs.Server, reader.Token, "")
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 2 })

	payload := strings.Repeat("x", 60_000)
	const n = 400
	var wg sync.WaitGroup
	var maxBuffered int
	wg.Go(func() {
		for range n {
			fs.send(t, 0, payload)
			if st := fs.App.Hub().Stats(); st.MaxBuffered > maxBuffered {
				maxBuffered = st.MaxBuffered
			}
		}
	})
	start := time.Now()
	for i := range n {
		if _, ok := live.next(t, 30*time.Second); !ok {
			t.Fatalf("reader stalled at %d/%d", i, n)
		}
	}
	wg.Wait()
	t.Logf("reader got %d × 60 KB in %v while another stream was stuck", n, time.Since(start))
	if cap := fs.App.Hub().Stats().BufferCap; maxBuffered > cap {
		t.Fatalf("a buffer held %d events (cap %d)", maxBuffered, cap)
	}
	// The stuck stream is disconnected (write deadline) and its slot freed.
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 1 })
	// It resumes from its cursor (here: from the start) and gets everything.
	br := bufio.NewReader(conn)
	_, _ = br.ReadString('\n')
	resumed, _ := openSSE(t, fs.Server, stuck.Token, "?after=0")
	for i := range n {
		if _, ok := resumed.next(t, 30*time.Second); !ok {
			t.Fatalf("resumed stream stalled at %d", i)
		}
	}
}

// TestKeyPackagesLowNoticeReachesTheFeed: a claim that takes a device's
// key packages below the low-water mark puts a notice in its feed, live.
func TestKeyPackagesLowNoticeReachesTheFeed(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	s.UploadKeyPackages(t, alice, s.Config.Limits.KeyPackageLowWater, false)
	st, resp := openSSE(t, s, alice.Token, "")
	if st == nil {
		t.Fatalf("SSE = %d", resp.StatusCode)
	}
	waitFor(t, func() bool { return s.App.Hub().Stats().Subscriptions == 1 })
	r := s.Do(t, "POST", "/v1/users/alice/key-packages/claim", bob.Token, map[string]any{"cipher_suite": 1})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("claim = %d %s", r.StatusCode, r.Body)
	}
	e, ok := st.next(t, 5*time.Second)
	if !ok || e.Kind != "notice" || e.RecipientDeviceID != alice.DeviceID || e.GroupID != "" {
		t.Fatalf("notice = %+v", e)
	}
	var n struct {
		Type        string `json:"type"`
		CipherSuite int    `json:"cipher_suite"`
		Remaining   int    `json:"remaining"`
		LowWater    int    `json:"low_water"`
	}
	if err := json.Unmarshal(e.Payload, &n); err != nil || n.Type != "key_packages_low" || n.CipherSuite != 1 ||
		n.Remaining != s.Config.Limits.KeyPackageLowWater-1 || n.LowWater != s.Config.Limits.KeyPackageLowWater {
		t.Fatalf("notice payload %s: %v", e.Payload, err)
	}
	// Bob's feed has nothing.
	r = s.Do(t, "GET", "/v1/sync?after=0&timeout=0", bob.Token, nil)
	if !strings.Contains(string(r.Body), `"events":[]`) {
		t.Fatalf("bob's feed: %s", r.Body)
	}
}
