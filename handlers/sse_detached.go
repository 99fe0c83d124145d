package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2/sse"

	"github.com/sovereign-im/sovereign/realtime"
)

// Detached SSE streams (HTTP/1.1). An idle stream served by net/http keeps
// the connection's goroutine with the whole handler chain on its stack
// (middleware, Huma, the stream loop: its stack grows to 16–32 KiB), the
// connection's 4 KiB read and write buffers and its background reader. Once
// the stream is accepted (cursor checked, slot taken, subscribed), a
// stream over HTTP/1.1 is taken over instead: the connection is hijacked,
// the response head is written by hand (the same status and headers the
// middleware and Huma set, chunked) and the handler returns. From then on
// an idle stream has no goroutine at all: it is parked (sse_parked.go).
// Its subscription's notify function, the shared ticker (heartbeats,
// expiry, the check that the client is still there) and the server's
// shutdown each schedule one short run on a runner goroutine, which writes
// what is due (events, a ping, the end of the body) with one small buffer
// that grows only while a batch is written, and exits. The rules are the
// streamLoop's: heartbeats with a session check, expiry, shutdown (the
// server's Stopping context), revocation (the hub ends the subscription).
// HTTP/2 streams keep net/http's path.

// peerCheckTicks is how many stream ticks pass between two checks that the
// client is still connected (a detached stream has no read to tell it).
const peerCheckTicks = 3

// canDetach reports whether the stream's request can be taken over.
func canDetach(r *http.Request) bool {
	return r != nil && r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.Method == http.MethodGet
}

// detach hijacks the connection and parks the stream. It reports false
// when the connection cannot be hijacked (the caller then serves the
// stream as before). On true the stream belongs to the parked set, which
// closes it.
func (st *stream) detach(ctx context.Context, w http.ResponseWriter) bool {
	head := responseHead(w.Header())
	// Bytes the client sent after its request (it should send none) are
	// dropped with net/http's buffers.
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	_ = conn.SetReadDeadline(time.Time{}) // the server's ReadTimeout no longer applies
	_ = conn.SetWriteDeadline(time.Now().Add(sse.WriteTimeout))
	if _, err := conn.Write(head); err != nil {
		_ = conn.Close()
		st.close()
		return true
	}
	// From here a deadline is set only around a write that has to wait
	// (chunkWriter.flush): the first, non-blocking writev of each chunk
	// needs none, and re-arming the poller's timer for every batch was a
	// few per cent of a busy fan-out's CPU.
	_ = conn.SetWriteDeadline(time.Time{})
	// Hold nothing of net/http's: the response and request reach its
	// connection state and buffers, which the hijack made garbage.
	st.req, st.rw = nil, nil
	cw := &chunkWriter{conn: conn, pool: &st.h.parked.bufs, set: st.h.parked}
	st.body = &bodyWriter{w: cw, flushFn: cw.flush}
	// The request's context ends when the handler returns: keep its values
	// (principal, logger), not its end. Shutdown reaches a parked stream
	// through the parked set, not through its context.
	st.h.parked.park(&parkedStream{st: st, ctx: context.WithoutCancel(ctx), conn: conn})
	return true
}

// responseHead is the status line and headers of a stream's response, as
// net/http would write them for a chunked 200.
func responseHead(h http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	hh := h.Clone()
	hh.Del("Content-Length")
	hh.Del("Transfer-Encoding")
	hh.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = hh.Write(&b)
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	return b.Bytes()
}

// chunkWriter collects a batch and writes it as one HTTP/1.1 chunk. Its
// buffer is borrowed from the parked set's pool for the batch and given back once the
// batch is written, so an idle stream holds none and a busy one does not
// grow a fresh buffer for every batch.
type chunkWriter struct {
	conn net.Conn
	pool *sync.Pool // of *[]byte: the parked set's batch buffers
	set  *parkedSet // told when a write has to wait for the client
	mu   sync.Mutex
	buf  *[]byte
}

// newChunkBuf makes a batch buffer for the pool.
func newChunkBuf() any { b := make([]byte, 0, chunkBufSize); return &b }

// chunkBufSize is a batch buffer's starting size (a few events); a buffer
// that grew past chunkBufMax for a large batch is dropped, not pooled.
const (
	chunkBufSize = 4096
	chunkBufMax  = 256 << 10
)

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.buf == nil {
		c.buf = c.pool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	c.mu.Unlock()
	return len(p), nil
}

func (c *chunkWriter) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return nil
	}
	buf := c.buf
	c.buf = nil
	defer func() {
		if cap(*buf) <= chunkBufMax {
			*buf = (*buf)[:0]
			c.pool.Put(buf)
		}
	}()
	if len(*buf) == 0 {
		return nil
	}
	var size [20]byte
	n := strconv.AppendInt(size[:0], int64(len(*buf)), 16)
	n = append(n, '\r', '\n')
	bufs := net.Buffers{n, *buf, crlf}
	// One non-blocking writev first: a client that keeps up takes the
	// whole chunk at once. Only a full socket makes the runner wait, and the
	// parked set is told, so that the other streams do not wait with it.
	written, all, err := tryWritev(c.conn, bufs)
	if err != nil || all {
		return err
	}
	// The rest goes out the blocking way, for at most sse.WriteTimeout: a
	// client that stops reading is cut off, one that reads slowly is not.
	rest := skipBytes(bufs, written)
	c.set.waitWhile(func() {
		_ = c.conn.SetWriteDeadline(time.Now().Add(sse.WriteTimeout))
		_, err = rest.WriteTo(c.conn)
		if err == nil {
			_ = c.conn.SetWriteDeadline(time.Time{})
		}
	})
	return err
}

// skipBytes returns bufs without their first n bytes.
func skipBytes(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// crlf ends a chunk.
var crlf = []byte("\r\n")

// writePing writes a ping event as Huma's sender does ("event: ping",
// "data: <json>", blank line) and flushes.
func (st *stream) writePing(p Ping) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	st.body.renewWriteDeadline()
	for _, part := range [][]byte{[]byte("event: ping\ndata: "), raw, []byte("\n\n")} {
		if _, err := st.body.Write(part); err != nil {
			return err
		}
	}
	return st.body.flush()
}

// streamLoop serves an open stream until it ends; ended is true when it
// ended on the server's side (session over, revoked, shutdown) rather than
// by a failed write or the client leaving.
func (h *handler) streamLoop(ctx context.Context, st *stream, ping func(Ping) error) (ended bool) {
	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	lastBeat := time.Now()
	for {
		evs, err := st.reader.Next(ctx, streamBatch, tick.C)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return h.d.Stopping != nil && h.d.Stopping.Err() != nil
			}
			if !errors.Is(err, realtime.ErrSessionEnded) && !errors.Is(err, realtime.ErrHubClosed) {
				h.log().WarnContext(ctx, "event stream", "err", err)
			}
			return true
		}
		if len(evs) > 0 {
			if err := st.writeSSE(evs); err != nil {
				return false
			}
			h.delivered(evs)
			continue
		}
		if st.expired() {
			return true
		}
		if time.Since(lastBeat) >= st.heartbeat {
			lastBeat = time.Now()
			if !st.stillValid(ctx) {
				return true
			}
			if err := ping(Ping{Time: h.now().UTC().Format(time.RFC3339)}); err != nil {
				return false
			}
		}
	}
}

var _ io.Writer = (*chunkWriter)(nil)
