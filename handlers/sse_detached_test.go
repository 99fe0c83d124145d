package handlers_test

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSSEOverHTTP1IsDetached: an SSE stream over HTTP/1.1 is served
// without a goroutine of its own once idle (no net/http connection
// goroutine holds it either), with the same headers, chunked; events and pings
// flow; a client that leaves frees the stream within a few seconds; a
// revoked session ends it cleanly (the chunked body's end, not a cut).
func TestSSEOverHTTP1IsDetached(t *testing.T) {
	fs := newFeedServer(t, 2)
	tok := fs.accs[1].Token
	st, resp := openSSE(t, fs.Server, tok, "")
	if st == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Proto != "HTTP/1.1" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("proto %s, transfer encoding %v", resp.Proto, resp.TransferEncoding)
	}
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	e := fs.send(t, 0, "hello")
	if got, _ := st.next(t, 5*time.Second); got.Seq != e.Seq {
		t.Fatalf("got seq %d, want %d", got.Seq, e.Seq)
	}
	stacks := func() string {
		b := make([]byte, 1<<22)
		return string(b[:runtime.Stack(b, true)])
	}
	// Idle, the stream has no goroutine at all: neither the handler nor a
	// stream loop of its own (the shared ticker is the one goroutine).
	waitFor(t, func() bool {
		s := stacks()
		return !strings.Contains(s, "handlers.(*parkedStream).run") && !strings.Contains(s, "handlers.(*handler).streamLoop")
	})
	// Nor a runner waiting for more work: runners exit once idle.
	waitFor(t, func() bool { return !strings.Contains(stacks(), "handlers.(*parkedSet).runner") })
	if s := stacks(); strings.Contains(s, "handlers.(*handler).streamEvents") {
		t.Fatal("the handler still serves the stream")
	} else if !strings.Contains(s, "handlers.(*parkedSet).tick") {
		t.Fatal("no shared ticker for the parked stream")
	}
	// It still gets what is published while it is parked.
	e2 := fs.send(t, 0, "again")
	if got, _ := st.next(t, 5*time.Second); got.Seq != e2.Seq {
		t.Fatalf("got seq %d, want %d", got.Seq, e2.Seq)
	}

	// A client that leaves: the stream ends and its subscription goes.
	st.close()
	waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 0 })

	// A revoked session ends the stream with the chunked body's end.
	st2, _ := openSSE(t, fs.Server, tok, "")
	if st2 == nil {
		t.Fatal("second stream refused")
	}
	if r := fs.Do(t, "POST", "/v1/auth/logout", tok, nil); r.StatusCode/100 != 2 {
		t.Fatalf("logout = %d %s", r.StatusCode, r.Body)
	}
	select {
	case <-st2.done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream open after the session ended")
	}
	if st2.err != nil {
		t.Fatalf("stream ended with %v, want a clean end", st2.err)
	}
}
