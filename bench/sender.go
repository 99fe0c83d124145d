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

// Sender posts JSON requests over one HTTP/1.1 keep-alive connection of its
// own, with as little client work as a request allows: the request is
// written with one write from a reused buffer and the answer parsed in
// place (status line, Content-Length or chunked body). net/http's client
// costs about 50 µs of CPU per request here (its per-connection read and
// write goroutines, header maps, a body reader per answer), and the load
// generator shares the server's two cores: every microsecond it spends is
// one the server under test does not get. The server still sees an
// ordinary HTTP/1.1 client, and every answer is read in full and checked.
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
}

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

// Post sends body (JSON) to path with a bearer token and waits for the
// whole answer. A non-2xx answer is a *StatusError. ctx ending aborts the
// request in flight.
func (s *Sender) Post(ctx context.Context, path, token string, body []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.conn == nil {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return 0, fmt.Errorf("POST %s: %w", path, err)
		}
		s.conn = c
		if s.br == nil {
			s.br = bufio.NewReaderSize(c, 4096)
		} else {
			s.br.Reset(c)
		}
	}
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	status, keep, err := s.roundTrip(path, token, body)
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

func (s *Sender) roundTrip(path, token string, body []byte) (status int, keep bool, err error) {
	r := s.req[:0]
	r = append(r, "POST "...)
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, s.host...)
	r = append(r, "\r\nUser-Agent: sovereign-bench\r\nContent-Type: application/json\r\n"...)
	if token != "" {
		r = append(r, "Authorization: Bearer "...)
		r = append(r, token...)
		r = append(r, "\r\n"...)
	}
	r = append(r, "Content-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n\r\n"...)
	r = append(r, body...)
	s.req = r
	if err := s.conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := s.conn.Write(r); err != nil {
		return 0, false, err
	}
	return s.readResponse()
}

// readResponse reads one HTTP/1.1 answer, its body into s.body.
func (s *Sender) readResponse() (status int, keep bool, err error) {
	line, err := s.line()
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(rest[:3]))
	if err != nil || status < 100 || status > 999 {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = bytes.Equal(proto, []byte("HTTP/1.1"))
	length, chunked := -1, false
	for {
		h, err := s.line()
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
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	s.body = s.body[:0]
	switch {
	case status/100 == 1 || status == 204 || status == 304:
		if status/100 == 1 {
			return 0, false, fmt.Errorf("unexpected interim answer %d", status)
		}
	case chunked:
		err = s.readChunked()
	case length >= 0:
		err = s.readN(length)
	default:
		// No length: the body runs to the end of the connection.
		var b []byte
		b, err = io.ReadAll(s.br)
		s.body, keep = append(s.body, b...), false
	}
	if err != nil {
		return 0, false, fmt.Errorf("read body: %w", err)
	}
	return status, keep, nil
}

func (s *Sender) readN(n int) error {
	if n > 16<<20 {
		return fmt.Errorf("answer body of %d bytes is past the 16 MiB this client reads", n)
	}
	s.body = append(s.body, make([]byte, n)...)
	_, err := io.ReadFull(s.br, s.body[len(s.body)-n:])
	return err
}

func (s *Sender) readChunked() error {
	for {
		line, err := s.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 31)
		if err != nil {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				t, err := s.line()
				if err != nil || len(t) == 0 {
					return err
				}
			}
		}
		if err := s.readN(int(n)); err != nil {
			return err
		}
		if crlf, err := s.line(); err != nil || len(crlf) != 0 {
			return errors.Join(err, errors.New("chunk not followed by CRLF"))
		}
	}
}

// line reads one CRLF- (or LF-) terminated line, without its terminator;
// it is valid until the next read.
func (s *Sender) line() ([]byte, error) {
	l, err := s.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("line longer than 4 KiB")
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}
