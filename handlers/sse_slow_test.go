//go:build linux

package handlers_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSSESlowClientsDoNotHoldUpOthers: more clients than there are stream
// runners (one per CPU) stop reading while large messages arrive, so the
// server's writes to them fill their sockets and would wait for the write
// timeout (5 s); a client that reads still gets the next message at once,
// because a runner that must wait for a client stops counting against the
// bound and another takes the queue.
func TestSSESlowClientsDoNotHoldUpOthers(t *testing.T) {
	slow := runtime.GOMAXPROCS(0) + 1
	fs := newFeedServer(t, slow+2)
	u, err := url.Parse(fs.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The slow clients: a tiny receive buffer, the response head read, then
	// nothing more.
	for i := range slow {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			if err != nil {
				return err
			}
			return serr
		}}
		conn, err := d.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", u.Host, fs.accs[2+i].Token)
		rd := bufio.NewReader(conn)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("slow client %d: response head: %v", i, err)
			}
			if line == "\r\n" {
				break
			}
		}
	}
	// The reading client records when each event id arrives.
	rc := openRawSSE(t, fs.URL, fs.accs[1].Token)
	arrived := make(chan string, 1024)
	go func() {
		for {
			_ = rc.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			size, err := rc.rd.ReadString('\n')
			if err != nil {
				return
			}
			n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
			if err != nil || n <= 0 {
				return
			}
			b := make([]byte, n+2)
			if _, err := io.ReadFull(rc.rd, b); err != nil {
				return
			}
			for _, m := range sseID.FindAllStringSubmatch(string(b[:n]), -1) {
				arrived <- m[1]
			}
		}
	}()
	waitID := func(id int64, within time.Duration) {
		t.Helper()
		want := strconv.FormatInt(id, 10)
		for {
			select {
			case got := <-arrived:
				if got == want {
					return
				}
			case <-time.After(within):
				t.Fatalf("event %d not received within %v", id, within)
			}
		}
	}
	// Large messages fill the slow clients' sockets (each stream is sent
	// 120 × 60 KB, beyond the 4 MiB a loopback socket buffers), so the
	// runners writing to them wait; the reading client takes them all, and
	// the message after them reaches it at once, not after the slow
	// clients' write timeout.
	big := strings.Repeat("x", 60<<10)
	for range 120 {
		fs.send(t, 0, big)
	}
	sent := time.Now()
	m := fs.send(t, 0, "marker")
	waitID(m.Seq, 30*time.Second)
	if d := time.Since(sent); d > 2500*time.Millisecond {
		t.Fatalf("the reading client got the next message %v after it was sent: runners waited for slow clients (write timeout 5 s)", d)
	}
}
