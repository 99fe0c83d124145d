package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// SSE is an open event stream (GET /v1/events).
type SSE struct {
	body io.Closer
	rd   *bufio.Reader
	data []byte // the last event's data, reused
}

// OpenSSE opens the device's event stream after seq (after < 0: from the
// device's acknowledged cursor). It returns once the server answered with
// its headers.
func OpenSSE(ctx context.Context, c *Client, token string, after int64) (*SSE, error) {
	path := ssePath(after)
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{Method: "GET", Path: path, Status: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
	}
	return newSSE(resp.Body), nil
}

// OpenSSEWith opens the stream like OpenSSE through s, a Sender of the
// stream's own: the load generator reads 100,000s of events a second, and
// net/http's body layers cost it about a microsecond per read.
func OpenSSEWith(ctx context.Context, s *Sender, token string, after int64) (*SSE, error) {
	body, err := s.Stream(ctx, ssePath(after), token, "text/event-stream")
	if err != nil {
		return nil, err
	}
	return newSSE(body), nil
}

func newSSE(body io.ReadCloser) *SSE {
	return &SSE{body: body, rd: bufio.NewReaderSize(body, 16<<10)}
}

func ssePath(after int64) string {
	if after >= 0 {
		return "/v1/events?after=" + strconv.FormatInt(after, 10)
	}
	return "/v1/events"
}

// Next returns the event type and data of the next event. data is valid
// until the next call (the load generator reads 100,000s of events a
// second beside the server it measures: a fresh buffer per event was
// garbage it had to collect on the same CPUs).
func (s *SSE) Next() (event string, data []byte, err error) {
	event = "message"
	data = s.data[:0]
	defer func() { s.data = data[:0] }()
	for {
		line, err := s.rd.ReadSlice('\n')
		if err != nil {
			return "", nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				return event, data, nil
			}
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[6:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[5:])...)
		}
	}
}

// Close ends the stream.
func (s *SSE) Close() error { return s.body.Close() }

// StampAD is authenticated data carrying a send time: the fan-out and
// wake-up scenarios put it in each PrivateMessage so receivers can compute
// publish-to-receive latency (sender and receivers share the clock).
func StampAD(t time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte("sbt1"), uint64(t.UnixNano()))
}

// payloadKey finds the base64 payload in an event's JSON without decoding
// the whole object.
var payloadKey = []byte(`"payload":"`)

// StampOf extracts the send time stamped by StampAD from an event's JSON
// (a feed event carrying a PrivateMessage of a group whose id is gidLen
// bytes). ok is false for events without a stamp.
func StampOf(eventJSON []byte, gidLen int) (time.Time, bool) {
	i := bytes.Index(eventJSON, payloadKey)
	if i < 0 {
		return time.Time{}, false
	}
	enc := eventJSON[i+len(payloadKey):]
	// header 4, group id opaque, epoch 8, content type 1, ad length 1, ad 12
	need := 4 + 1 + gidLen + 8 + 1 + 1 + 12
	n := base64.StdEncoding.EncodedLen(need) + 4
	if len(enc) < n {
		return time.Time{}, false
	}
	var buf [128]byte
	m, err := base64.StdEncoding.Decode(buf[:], enc[:n/4*4])
	if err != nil || m < need {
		return time.Time{}, false
	}
	off := 4 + 1 + gidLen + 8
	if buf[off] != 1 || buf[off+1] != 12 || string(buf[off+2:off+6]) != "sbt1" {
		return time.Time{}, false
	}
	ns := binary.BigEndian.Uint64(buf[off+6 : off+14])
	return time.Unix(0, int64(ns)), true
}

// PollAnswer is a long-poll answer with the events left as raw JSON.
type PollAnswer struct {
	Events  []rawJSON `json:"events"`
	Next    int64     `json:"next"`
	HasMore bool      `json:"has_more"`
}

type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error { *r = append((*r)[:0], b...); return nil }

// Poll long-polls the device's feed after seq, waiting up to timeout.
func Poll(ctx context.Context, c *Client, token string, after int64, timeout time.Duration) (*PollAnswer, error) {
	var ans PollAnswer
	path := fmt.Sprintf("/v1/sync?after=%d&timeout=%d&limit=1000", after, int(timeout.Seconds()))
	if _, err := c.Do(ctx, "GET", path, token, nil, &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}
