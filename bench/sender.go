package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sender speaks HTTP/1.1 over one keep-alive connection of its own, with as
// little client work as a request allows: each request is written with one
// write from a reused buffer and the answer parsed in place (status line,
// Content-Length or chunked body). net/http's client costs about 50 µs of
// CPU per request here (its per-connection read and write goroutines,
// header maps, a body reader per answer), and the load generator shares the
// server's two cores: every microsecond it spends is one the server under
// test does not get. The server still sees an ordinary HTTP/1.1 client, and
// every answer is read in full and checked.
//
// A Sender is used by one goroutine at a time. It reconnects after any
// error, so one failed request never fails the next.
type Sender struct {
	addr, host string
	timeout    time.Duration
	conn       net.Conn
	br         *bufio.Reader
	req        []byte
	body       []byte
	framing    framing
}

// maxAnswerBytes bounds an answer body the Sender reads into memory.
const maxAnswerBytes = 16 << 20

// NewSender returns a Sender for base, an http:// URL; other schemes (TLS)
// are refused: use Client for them.
func NewSender(base string) (*Sender, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("sender: parse %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("sender: %s: only http:// servers (use the net/http client for %s)", base, u.Scheme)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &Sender{addr: addr, host: u.Host, timeout: 30 * time.Second}, nil
}

// Close closes the connection.
func (s *Sender) Close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *Sender) dial(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	s.conn = c
	if s.br == nil {
		s.br = bufio.NewReaderSize(c, 4096)
	} else {
		s.br.Reset(c)
	}
	return nil
}

// Post sends body (JSON) to path with a bearer token and waits for the
// whole answer. A non-2xx answer is a *StatusError. ctx ending aborts the
// request in flight.
func (s *Sender) Post(ctx context.Context, path, token string, body []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.dial(ctx); err != nil {
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	status, keep, err := s.roundTrip("POST", path, token, "", body)
	if err == nil {
		err = s.readBody()
	}
	if !stop() || err != nil || !keep {
		s.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("POST %s: %w", path, err)
	}
	if status/100 != 2 {
		return status, &StatusError{Method: "POST", Path: path, Status: status, Body: strings.TrimSpace(string(s.body))}
	}
	return status, nil
}

// Stream sends a GET for an answer that streams (an SSE stream) and, once
// its head says 200, returns the body as it arrives; any other status is a
// *StatusError with the body. The connection belongs to the stream until
// it is closed; ctx ending closes it.
func (s *Sender) Stream(ctx context.Context, path, token, accept string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.dial(ctx); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	status, _, err := s.roundTrip("GET", path, token, accept, nil)
	if err == nil && status != 200 {
		if err = s.readBody(); err == nil {
			err = &StatusError{Method: "GET", Path: path, Status: status, Body: strings.TrimSpace(string(s.body))}
		}
	}
	if err == nil {
		// A stream is quiet for as long as nothing happens.
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		stop()
		s.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var se *StatusError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return &stream{Reader: s.bodyReader(), close: func() error {
		stop()
		s.Close()
		return nil
	}}, nil
}

type stream struct {
	io.Reader
	close func() error
}

func (st *stream) Close() error { return st.close() }

// roundTrip writes one request and reads the answer's head; the body is
// left for readBody or bodyReader.
func (s *Sender) roundTrip(method, path, token, accept string, body []byte) (status int, keep bool, err error) {
	r := s.req[:0]
	r = append(r, method...)
	r = append(r, ' ')
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, s.host...)
	r = append(r, "\r\nUser-Agent: sovereign-bench\r\n"...)
	if accept != "" {
		r = append(r, "Accept: "...)
		r = append(r, accept...)
		r = append(r, "\r\n"...)
	}
	if token != "" {
		r = append(r, "Authorization: Bearer "...)
		r = append(r, token...)
		r = append(r, "\r\n"...)
	}
	if body != nil {
		r = append(r, "Content-Type: application/json\r\nContent-Length: "...)
		r = strconv.AppendInt(r, int64(len(body)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(r, "\r\n"...)
	r = append(r, body...)
	s.req = r
	if err := s.conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := s.conn.Write(r); err != nil {
		return 0, false, err
	}
	return s.readHead()
}

// The framing of the answer whose head was read last.
type framing struct {
	length  int // -1: none given
	chunked bool
}

// readHead reads an answer's status line and headers.
func (s *Sender) readHead() (status int, keep bool, err error) {
	line, err := readLine(s.br)
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(rest[:3]))
	if err != nil || status < 200 || status > 999 {
		// 1xx interim answers are never sent to these requests.
		return 0, false, fmt.Errorf("malformed or unexpected status line %q", line)
	}
	keep = bytes.Equal(proto, []byte("HTTP/1.1"))
	s.framing = framing{length: -1}
	for {
		h, err := readLine(s.br)
		if err != nil {
			return 0, false, fmt.Errorf("read header: %w", err)
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
			s.framing.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			s.framing.chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	if status == 204 || status == 304 {
		s.framing = framing{length: 0}
	}
	if !s.framing.chunked && s.framing.length < 0 {
		keep = false // the body runs to the end of the connection
	}
	return status, keep, nil
}

// bodyReader reads the body of the answer whose head was read last.
func (s *Sender) bodyReader() io.Reader {
	switch {
	case s.framing.chunked:
		return &chunkedReader{br: s.br}
	case s.framing.length >= 0:
		return io.LimitReader(s.br, int64(s.framing.length))
	default:
		return s.br
	}
}

// readBody reads the whole body of the answer whose head was read last
// into s.body.
func (s *Sender) readBody() error {
	s.body = s.body[:0]
	if s.framing.length > maxAnswerBytes {
		return fmt.Errorf("answer body of %d bytes is past the %d this client reads", s.framing.length, maxAnswerBytes)
	}
	if s.framing.length > cap(s.body) {
		s.body = make([]byte, 0, s.framing.length)
	}
	rd := s.bodyReader()
	for {
		if len(s.body) == cap(s.body) {
			if len(s.body) >= maxAnswerBytes {
				return fmt.Errorf("read body: past the %d bytes this client reads", maxAnswerBytes)
			}
			s.body = append(s.body, 0)[:len(s.body)]
		}
		n, err := rd.Read(s.body[len(s.body):cap(s.body)])
		s.body = s.body[:len(s.body)+n]
		if errors.Is(err, io.EOF) {
			if s.framing.length > 0 && len(s.body) < s.framing.length {
				return fmt.Errorf("read body: %w", io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
	}
}

// chunkedReader decodes a chunked body (RFC 9112 §7.1) from br.
type chunkedReader struct {
	br      *bufio.Reader
	left    int  // bytes left in the current chunk
	started bool // a chunk was read: its CRLF comes before the next size
	err     error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if c.err = c.nextChunk(); c.err != nil {
			return 0, c.err
		}
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= n
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
	}
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// nextChunk reads the next chunk's size line (after the previous chunk's
// CRLF); at the last chunk it reads the trailers and reports io.EOF.
func (c *chunkedReader) nextChunk() error {
	if c.started {
		if crlf, err := readLine(c.br); err != nil {
			return eofIsUnexpected(err)
		} else if len(crlf) != 0 {
			return errors.New("chunk not followed by CRLF")
		}
	}
	line, err := readLine(c.br)
	if err != nil {
		return eofIsUnexpected(err)
	}
	size, _, _ := bytes.Cut(line, []byte(";"))
	n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 31)
	if err != nil {
		return fmt.Errorf("malformed chunk size %q", line)
	}
	c.started = true
	if n == 0 {
		for { // trailers, then the blank line
			t, err := readLine(c.br)
			if err != nil {
				return eofIsUnexpected(err)
			}
			if len(t) == 0 {
				return io.EOF
			}
		}
	}
	c.left = int(n)
	return nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine reads one CRLF- (or LF-) terminated line, without its
// terminator; it is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	l, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("line longer than 4 KiB")
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}
