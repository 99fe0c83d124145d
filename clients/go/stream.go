package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Bearer returns a request editor that authenticates with a session token.
func Bearer(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// SSEEvent is one dispatched Server-Sent Event.
type SSEEvent struct {
	Event string // "message" when the stream named none
	ID    string // the last id seen on the stream
	Data  string
	Retry int // reconnection delay in ms the server asked for, 0 if none
}

// SSEReader parses a text/event-stream (WHATWG HTML §9.2.6): CR, LF and
// CRLF line ends, comments, multi-line data, a leading BOM.
type SSEReader struct {
	r      *bufio.Reader
	lastID string
	first  bool
	maxLen int
}

// NewSSEReader reads events from r; lines longer than 1 MiB are an error.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 64<<10), first: true, maxLen: 1 << 20}
}

// ErrLineTooLong is returned for a line beyond the reader's limit.
var ErrLineTooLong = errors.New("sse: line too long")

func (s *SSEReader) readLine() (string, error) {
	var line []byte
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				// An unterminated last line cannot complete an event.
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		switch b {
		case '\n':
			return string(line), nil
		case '\r':
			if nb, err := s.r.Peek(1); err == nil && nb[0] == '\n' {
				_, _ = s.r.ReadByte()
			}
			return string(line), nil
		}
		line = append(line, b)
		if len(line) > s.maxLen {
			return "", ErrLineTooLong
		}
	}
}

// Next returns the next event. At the end of the stream it returns io.EOF
// (an event left unterminated by the end is discarded, as the spec says).
func (s *SSEReader) Next() (*SSEEvent, error) {
	var ev SSEEvent
	var data []string
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				return nil, io.EOF
			}
			return nil, err
		}
		if s.first {
			line = strings.TrimPrefix(line, "\ufeff")
			s.first = false
		}
		if line == "" {
			if !hasData {
				ev = SSEEvent{}
				continue
			}
			if ev.Event == "" {
				ev.Event = "message"
			}
			ev.Data = strings.Join(data, "\n")
			ev.ID = s.lastID
			return &ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.lastID = value
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && n >= 0 {
				ev.Retry = n
			}
		}
	}
}

// Stream is an open /v1/events stream.
type Stream struct {
	resp   *http.Response
	reader *SSEReader
}

// OpenStream opens the device's feed over Server-Sent Events, resuming
// after the given seq. It returns an *APIError for a non-2xx answer (429
// with Retry-After, 410 when the cursor is older than what is retained).
func OpenStream(ctx context.Context, hc *http.Client, server, token string, after int64) (*Stream, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u, err := url.Parse(strings.TrimSuffix(server, "/") + "/v1/events")
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	q := u.Query()
	q.Set("after", strconv.FormatInt(after, 10))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, NewAPIError(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("open stream: unexpected Content-Type %q", ct)
	}
	return &Stream{resp: resp, reader: NewSSEReader(resp.Body)}, nil
}

// Next returns the next SSE event of any type (message, ping, ...).
func (s *Stream) Next() (*SSEEvent, error) { return s.reader.Next() }

// Close ends the stream.
func (s *Stream) Close() error { return s.resp.Body.Close() }

// APIError is a problem answer (RFC 9457) from the server.
type APIError struct {
	Status     int
	Code       string
	Detail     string
	RetryAfter string
	Body       []byte
}

func (e *APIError) Error() string {
	return fmt.Sprintf("sovereign: %d %s: %s", e.Status, e.Code, e.Detail)
}

// NewAPIError reads a problem answer (at most 64 KiB of it).
func NewAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: body}
	e.Code, e.Detail = problemFields(body)
	return e
}

func problemFields(body []byte) (code, detail string) {
	// Tolerant extraction: a problem body that fails to decode still yields an error.
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &p); err != nil {
		return "", ""
	}
	return p.Code, p.Detail
}
