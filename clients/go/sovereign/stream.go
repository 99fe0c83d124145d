package sovereign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// Transport is how a Stream reads the feed.
type Transport string

// Transports.
const (
	// TransportAuto (the default) streams over SSE and switches to
	// long-poll when streaming fails repeatedly or is not possible (a proxy
	// that buffers or refuses event streams).
	TransportAuto Transport = ""
	// TransportSSE is Server-Sent Events only (GET /v1/events).
	TransportSSE Transport = "sse"
	// TransportLongPoll is long-poll only (GET /v1/sync).
	TransportLongPoll Transport = "longpoll"
)

// StreamOptions configure Session.Stream. The zero value streams from the
// device's acknowledged cursor over SSE, falling back to long-poll.
type StreamOptions struct {
	// After resumes after this seq (exclusive): the last event the program
	// has processed and persisted. 0 with FromAcked set: after the cursor
	// the device last acknowledged to the server.
	After int64
	// FromAcked starts after the server-side acknowledged cursor when
	// After is 0 (useful for bots that keep no cursor of their own).
	FromAcked bool
	// Transport picks SSE, long-poll or automatic (default).
	Transport Transport
	// AutoAck acknowledges each event once the program asks for the next
	// one (it has finished with the previous). Without it, call Ack.
	AutoAck bool
	// AckDelay coalesces acknowledgements: the server is told the highest
	// processed seq at most once per AckDelay (default 1 s).
	AckDelay time.Duration
	// PollTimeout is the long-poll wait (default 30 s, at most 60 s).
	PollTimeout time.Duration
	// PollLimit is the most events per long-poll answer (default 100).
	PollLimit int
	// IdleTimeout reopens an SSE stream that delivered nothing, not even
	// the server's heartbeat ping (every 15 s by default), for this long
	// (default 45 s).
	IdleTimeout time.Duration
	// SSEFailuresBeforeFallback is how many SSE failures in a row make
	// TransportAuto switch to long-poll (default 3).
	SSEFailuresBeforeFallback int
	// MinBackoff and MaxBackoff bound the wait between reconnects
	// (default 250 ms and 15 s, doubled per failure, with jitter); a
	// Retry-After from the server wins.
	MinBackoff, MaxBackoff time.Duration
	// MaxEventBytes bounds one SSE event (default 1 MiB).
	MaxEventBytes int
	// OnStatus, if set, is told when the stream connects, drops or changes
	// transport (for logs and status displays). It must not block.
	OnStatus func(StreamStatus)
	// Logger receives debug lines about reconnects and acks (default: none).
	Logger *slog.Logger
}

// StreamStatus reports a connection change.
type StreamStatus struct {
	Transport Transport
	Connected bool
	// Err is why the connection dropped (nil when connecting).
	Err error
}

func (o StreamOptions) withDefaults() StreamOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.AckDelay, time.Second)
	def(&o.PollTimeout, 30*time.Second)
	o.PollTimeout = min(o.PollTimeout, 60*time.Second)
	def(&o.IdleTimeout, 45*time.Second)
	def(&o.MinBackoff, 250*time.Millisecond)
	def(&o.MaxBackoff, 15*time.Second)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.PollLimit <= 0 {
		o.PollLimit = 100
	}
	if o.SSEFailuresBeforeFallback <= 0 {
		o.SSEFailuresBeforeFallback = 3
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrStreamClosed is returned by Next after Close.
var ErrStreamClosed = errors.New("sovereign: stream closed")

// errStreamingUnsupported marks an answer that is not an event stream
// (a proxy in the way): auto mode switches to long-poll at once.
var errStreamingUnsupported = errors.New("event stream unavailable")

// errIdle marks an SSE connection that went quiet past IdleTimeout.
var errIdle = errors.New("event stream idle")

// Stream is the device's feed. It connects in the background, resumes
// after the last event it delivered (Last-Event-ID on SSE, ?after= on
// long-poll), drops duplicates by seq, and hands events to Next one at a
// time: a program that stops calling Next holds the connection back (and
// the server's buffer for it), it never loses events. Terminal answers end
// it: 401 (session ended), 403, 410 (cursor older than what the server
// keeps; the *APIError's Problem says what to resynchronise) and 422.
type Stream struct {
	s      *Session
	o      StreamOptions
	http   *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	events chan *Event

	cursor    atomic.Int64 // the last seq delivered to Next
	transport atomic.Value // Transport in use
	fatal     atomic.Pointer[error]

	mu         sync.Mutex
	lastNext   int64 // seq returned by the last Next (AutoAck)
	ackPending int64 // highest seq processed and not yet acknowledged
	acked      int64 // highest seq the server confirmed
	ackTimer   *time.Timer
	ackErr     error
}

// Stream opens the device's feed in the background; the stream ends when
// ctx ends or Close is called.
func (s *Session) Stream(ctx context.Context, o StreamOptions) *Stream {
	o = o.withDefaults()
	hc := *s.http
	hc.Timeout = 0 // a stream is long; each long-poll has its own deadline
	ctx, cancel := context.WithCancel(ctx)
	st := &Stream{s: s, o: o, http: &hc, ctx: ctx, cancel: cancel, done: make(chan struct{}), events: make(chan *Event)}
	st.cursor.Store(o.After)
	if o.Transport == TransportLongPoll {
		st.transport.Store(TransportLongPoll)
	} else {
		st.transport.Store(TransportSSE)
	}
	go st.run()
	return st
}

// Next returns the next event of the feed, waiting for one. It returns
// ctx's error when ctx ends first (the stream goes on), the terminal error
// that ended the stream, or ErrStreamClosed after Close.
func (st *Stream) Next(ctx context.Context) (*Event, error) {
	if st.o.AutoAck {
		st.mu.Lock()
		prev := st.lastNext
		st.mu.Unlock()
		if prev > 0 {
			st.Ack(prev)
		}
	}
	select {
	case ev, ok := <-st.events:
		if !ok {
			if p := st.fatal.Load(); p != nil {
				return nil, *p
			}
			return nil, ErrStreamClosed
		}
		st.mu.Lock()
		st.lastNext = ev.Seq
		st.mu.Unlock()
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Position is the seq after which the stream resumes: the last event it
// delivered.
func (st *Stream) Position() int64 { return st.cursor.Load() }

// Transport is the transport in use now (TransportSSE or TransportLongPoll).
func (st *Stream) Transport() Transport { return st.transport.Load().(Transport) }

// Ack records that the program has processed (and persisted) every event
// up to seq. The server is told within AckDelay; Flush tells it now.
func (st *Stream) Ack(seq int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if seq <= st.ackPending || seq <= st.acked {
		return
	}
	st.ackPending = seq
	if st.ackTimer == nil {
		st.ackTimer = time.AfterFunc(st.o.AckDelay, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := st.Flush(ctx); err != nil {
				st.o.Logger.Debug("sovereign: ack failed", "err", err)
			}
		})
	}
}

// Acked is the highest seq the server has confirmed as acknowledged.
func (st *Stream) Acked() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.acked
}

// Flush sends the pending acknowledgement now, if there is one.
func (st *Stream) Flush(ctx context.Context) error {
	st.mu.Lock()
	if st.ackTimer != nil {
		st.ackTimer.Stop()
		st.ackTimer = nil
	}
	seq := st.ackPending
	st.mu.Unlock()
	if seq == 0 {
		return nil
	}
	r, err := st.s.AckFeedWithResponse(ctx, AckInputBody{Seq: seq})
	if err == nil && r.JSON200 == nil {
		err = apiErrorFrom(r.StatusCode(), r.HTTPResponse.Header, r.Body)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		st.ackErr = fmt.Errorf("ack %d: %w", seq, err)
		var ae *APIError
		if errors.As(err, &ae) && !retryable(ae.Status) {
			// The server refuses this ack for good (e.g. 422 beyond the
			// feed): drop it rather than retry it forever.
			if st.ackPending == seq {
				st.ackPending = 0
			}
		} else if st.ackTimer == nil && st.ackPending > 0 {
			st.ackTimer = time.AfterFunc(st.o.AckDelay, func() { _ = st.Flush(context.Background()) })
		}
		return st.ackErr
	}
	st.acked = max(st.acked, r.JSON200.AckedSeq)
	if st.ackPending <= st.acked {
		st.ackPending = 0
	}
	return nil
}

// Close ends the stream and sends the pending acknowledgement (within 5 s).
func (st *Stream) Close() error {
	st.cancel()
	<-st.done
	if st.o.AutoAck {
		st.mu.Lock()
		prev := st.lastNext
		st.mu.Unlock()
		if prev > 0 {
			st.Ack(prev)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return st.Flush(ctx)
}

func (st *Stream) status(s StreamStatus) {
	if st.o.OnStatus != nil {
		st.o.OnStatus(s)
	}
}

// fatal tells the answers that retrying cannot fix.
func fatal(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusGone, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// run connects, reads and reconnects until the stream ends.
func (st *Stream) run() {
	defer close(st.done)
	defer close(st.events)
	backoff := st.o.MinBackoff
	failures := 0
	for st.ctx.Err() == nil {
		tr := st.Transport()
		var delivered bool
		var err error
		if tr == TransportSSE {
			delivered, err = st.readSSE()
		} else {
			delivered, err = st.readLongPoll()
		}
		if st.ctx.Err() != nil {
			return
		}
		if delivered {
			backoff = st.o.MinBackoff
		}
		if err == nil {
			err = io.EOF // the server ended the stream (shutdown, proxy timeout): reconnect
		}
		if fatal(err) {
			st.fatal.Store(&err)
			st.status(StreamStatus{Transport: tr, Err: err})
			return
		}
		st.status(StreamStatus{Transport: tr, Err: err})
		st.o.Logger.Debug("sovereign: feed connection dropped", "transport", tr, "err", err)
		if tr == TransportSSE && st.o.Transport == TransportAuto {
			if delivered {
				failures = 0
			}
			failures++
			if errors.Is(err, errStreamingUnsupported) || failures >= st.o.SSEFailuresBeforeFallback {
				st.transport.Store(TransportLongPoll)
				st.o.Logger.Debug("sovereign: switching to long-poll", "failures", failures)
				continue
			}
		}
		wait := jitter(backoff)
		if ae := (*APIError)(nil); errors.As(err, &ae) && ae.RetryAfterDuration() > 0 {
			wait = ae.RetryAfterDuration()
		}
		backoff = min(backoff*2, st.o.MaxBackoff)
		if sleep(st.ctx, wait) != nil {
			return
		}
	}
}

// deliver hands ev to Next unless it is a duplicate; false when the
// stream ended meanwhile.
func (st *Stream) deliver(ev *Event) bool {
	if ev.Seq <= st.cursor.Load() {
		return true // already delivered (a reconnect's overlap)
	}
	st.cursor.Store(ev.Seq) // before the hand-over, so Position never lags what Next returned
	select {
	case st.events <- ev:
		return true
	case <-st.ctx.Done():
		return false
	}
}

// readSSE holds one SSE connection until it fails or ends. delivered says
// whether it handed any event over (which resets the backoff).
func (st *Stream) readSSE() (delivered bool, err error) {
	ctx, cancel := context.WithCancel(st.ctx)
	defer cancel()
	params := &StreamEventsParams{}
	if cur := st.cursor.Load(); cur > 0 || !st.o.FromAcked {
		c := strconv.FormatInt(cur, 10)
		params.After, params.LastEventID = &cur, &c
	}
	req, err := NewStreamEventsRequest(st.s.server, params)
	if err != nil {
		return false, fmt.Errorf("open stream: %w", err)
	}
	req = req.WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+st.s.token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")

	// The watchdog closes a connection that stays quiet past IdleTimeout,
	// from the request on (a proxy that buffers never sends headers), but
	// not while the program is busy with an event.
	var idle atomic.Bool
	watchdog := time.AfterFunc(st.o.IdleTimeout, func() { idle.Store(true); cancel() })
	defer watchdog.Stop()
	resp, err := st.http.Do(req)
	if err != nil {
		if idle.Load() {
			return false, errIdle
		}
		return false, fmt.Errorf("open stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, NewAPIError(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("%w (Content-Type %q)", errStreamingUnsupported, ct)
	}
	st.status(StreamStatus{Transport: TransportSSE, Connected: true})
	for ev, rerr := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: st.o.MaxEventBytes}) {
		if rerr != nil {
			err = rerr
			break
		}
		watchdog.Stop()
		if ev.Type == "message" || ev.Type == "" {
			fe, derr := decodeStreamEvent(ev.LastEventID, ev.Data)
			if derr != nil {
				return delivered, derr
			}
			if !st.deliver(fe) {
				return delivered, st.ctx.Err()
			}
			delivered = true
		} // "ping" and event types of later API versions only keep the connection alive
		watchdog.Reset(st.o.IdleTimeout)
	}
	if idle.Load() {
		return delivered, errIdle
	}
	if err != nil {
		return delivered, fmt.Errorf("read stream: %w", err)
	}
	return delivered, nil
}

// readLongPoll long-polls until a request fails.
func (st *Stream) readLongPoll() (delivered bool, err error) {
	announced := false
	timeout := int64(st.o.PollTimeout / time.Second)
	limit := int64(st.o.PollLimit)
	for st.ctx.Err() == nil {
		params := &SyncFeedParams{Timeout: &timeout, Limit: &limit}
		if cur := st.cursor.Load(); cur > 0 || !st.o.FromAcked {
			params.After = &cur
		}
		body, err := st.poll(params)
		if err != nil {
			return delivered, err
		}
		if !announced {
			st.status(StreamStatus{Transport: TransportLongPoll, Connected: true})
			announced = true
		}
		if body.Events == nil {
			continue
		}
		for _, b := range *body.Events {
			ev, err := EventFromBody(b)
			if err != nil {
				return delivered, err
			}
			if !st.deliver(ev) {
				return delivered, st.ctx.Err()
			}
			delivered = true
		}
	}
	return delivered, st.ctx.Err()
}

// poll sends one long-poll request, with a deadline past the server's wait.
func (st *Stream) poll(params *SyncFeedParams) (*SyncOutputBody, error) {
	ctx, cancel := context.WithTimeout(st.ctx, st.o.PollTimeout+30*time.Second)
	defer cancel()
	req, err := NewSyncFeedRequest(st.s.server, params)
	if err != nil {
		return nil, fmt.Errorf("long-poll: %w", err)
	}
	req = req.WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+st.s.token)
	req.Header.Set("Accept", "application/json")
	resp, err := st.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("long-poll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, NewAPIError(resp)
	}
	var out SyncOutputBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("long-poll: decode: %w", err)
	}
	return &out, nil
}
