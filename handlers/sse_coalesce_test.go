package handlers_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
)

// rawChunks reads a detached stream's HTTP/1.1 chunks off the socket, so a
// test sees how events were grouped into writes.
type rawChunks struct {
	conn net.Conn
	rd   *bufio.Reader
}

// openRawSSE sends GET /v1/events by hand and reads the response head.
func openRawSSE(t *testing.T, base, token string) *rawChunks {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", u.Host, token)
	rc := &rawChunks{conn: conn, rd: bufio.NewReader(conn)}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := rc.rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status line %q, %v", status, err)
	}
	for {
		line, err := rc.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("response head: %v", err)
		}
		if line == "\r\n" {
			return rc
		}
	}
}

// next returns the next chunk's bytes.
func (rc *rawChunks) next(t *testing.T) string {
	t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	size, err := rc.rd.ReadString('\n')
	if err != nil {
		t.Fatalf("chunk size: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if err != nil || n <= 0 {
		t.Fatalf("chunk size line %q", size)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(rc.rd, b); err != nil {
		t.Fatalf("chunk: %v", err)
	}
	return string(b[:n])
}

// nextEvents skips ping chunks and returns the event ids of the next
// chunk that carries events.
func (rc *rawChunks) nextEvents(t *testing.T) []string {
	t.Helper()
	for {
		c := rc.next(t)
		var ids []string
		for _, m := range sseID.FindAllStringSubmatch(c, -1) {
			ids = append(ids, m[1])
		}
		if len(ids) > 0 {
			return ids
		}
	}
}

var sseID = regexp.MustCompile(`(?m)^id: ?(\d+)$`)

// TestSSECoalescesABusyStream: a detached stream that has just written
// writes the events arriving within --stream-coalesce together, in one
// chunk; one that was quiet writes a lone event at once (alone in its
// chunk, long before the window ends).
func TestSSECoalescesABusyStream(t *testing.T) {
	const window = time.Second
	fs := newFeedServer(t, 2, func(c *config.Config) { c.Limits.StreamCoalesce = window })
	rc := openRawSSE(t, fs.URL, fs.accs[1].Token)

	start := time.Now()
	a := fs.send(t, 0, "first")
	if got := rc.nextEvents(t); len(got) != 1 || got[0] != strconv.FormatInt(a.Seq, 10) {
		t.Fatalf("first chunk has events %v, want only %d", got, a.Seq)
	}
	if d := time.Since(start); d >= window {
		t.Errorf("a quiet stream's event took %v, not written at once", d)
	}
	// Written just now: the next two wait for the window and go out in
	// one write.
	b := fs.send(t, 0, "second")
	c := fs.send(t, 0, "third")
	want := []string{strconv.FormatInt(b.Seq, 10), strconv.FormatInt(c.Seq, 10)}
	if got := rc.nextEvents(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("second chunk has events %v, want %v together", got, want)
	}
	// Quiet again after the window: a lone event is written at once.
	time.Sleep(2 * window)
	start = time.Now()
	d := fs.send(t, 0, "fourth")
	if got := rc.nextEvents(t); len(got) != 1 || got[0] != strconv.FormatInt(d.Seq, 10) {
		t.Fatalf("chunk has events %v, want only %d", got, d.Seq)
	}
	if el := time.Since(start); el >= window {
		t.Errorf("the event after a quiet spell took %v, not written at once", el)
	}
}
