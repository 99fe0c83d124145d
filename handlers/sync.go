package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/danielgtaylor/huma/v2/sse"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
)

// TagSync groups the feed operations.
const TagSync = "sync"

// Stream tuning.
const (
	// streamBatch bounds the events written (then flushed once) per batch.
	streamBatch = 256
	// streamTick is how often an open stream checks session expiry and
	// whether a heartbeat is due.
	streamTick = time.Second
	// longPollDefaultTimeout applies when ?timeout= is absent.
	longPollDefaultTimeout = 30
)

// Ping is the SSE heartbeat event.
type Ping struct {
	Time string `json:"time" format:"date-time" doc:"Server time"`
}

// Resync is what a device needs when its cursor is older than what the
// server retains.
type Resync struct {
	ResumeAfter int64         `json:"resume_after" doc:"Resume the feed after this seq once the groups below are resynchronised"`
	Groups      []GroupEpochs `json:"groups" doc:"Groups this device is a member of, with their current epochs: fetch each group's GroupInfo (or wait to be re-added) before resuming"`
}

// GroupEpochs is one group and its current epoch.
type GroupEpochs struct {
	GroupID string `json:"group_id" doc:"MLS group id, base64url without padding"`
	Epoch   uint64 `json:"epoch" doc:"The group's current epoch"`
}

func resyncBody(r *models.Resync) *Resync {
	if r == nil {
		return nil
	}
	out := &Resync{ResumeAfter: r.ResumeAfter, Groups: make([]GroupEpochs, len(r.Groups))}
	for i, g := range r.Groups {
		out.Groups[i] = GroupEpochs{GroupID: encodeGroupID(g.GroupID), Epoch: g.Epoch}
	}
	return out
}

// encodeEvent is the one wire encoding of an event for streams (the same
// JSON as group history), made once per published event and shared
// (realtime.Item.Wire).
func encodeEvent(e *models.Event) []byte {
	b, err := json.Marshal(eventBody(e))
	if err != nil {
		return nil
	}
	return b
}

// feedEvents converts a long-poll batch to EventBody (encoded by Huma with
// the response).
func feedEvents(items []*realtime.Item) []EventBody {
	out := make([]EventBody, len(items))
	for i, it := range items {
		out[i] = eventBody(it.Event)
	}
	return out
}

// afterGiven tells an absent ?after= from after=0.
func afterGiven(ctx huma.Context) bool { return ctx.Query("after") != "" }

// EventsInput is the SSE request.
type EventsInput struct {
	After       int64  `query:"after" minimum:"0" doc:"Resume after this seq (exclusive). Absent (and no Last-Event-ID): resume after the device's acknowledged cursor."`
	LastEventID string `header:"Last-Event-ID" pattern:"^[0-9]{1,18}$" doc:"Set by EventSource on reconnect: resume after this seq; wins over ?after="`
}

// SyncInput is the long-poll request.
type SyncInput struct {
	After   int64 `query:"after" minimum:"0" doc:"Resume after this seq (exclusive). Absent: resume after the device's acknowledged cursor."`
	Timeout int   `query:"timeout" minimum:"0" maximum:"60" default:"30" doc:"Seconds to wait when no event is waiting (0: answer at once)"`
	Limit   int   `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"Most events to return"`

	afterSet bool
}

// Resolve records whether ?after= was given.
func (in *SyncInput) Resolve(ctx huma.Context) []error {
	in.afterSet = afterGiven(ctx)
	return nil
}

// SyncOutput is a long-poll answer.
type SyncOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         struct {
		Events  []EventBody `json:"events" doc:"Events after the cursor, in seq order; empty when the wait timed out"`
		Next    int64       `json:"next" doc:"The cursor for the next request (seq of the last event, or the request's cursor)"`
		HasMore bool        `json:"has_more" doc:"More events are waiting: ask again at once"`
	}
}

// AckInput acknowledges the feed up to a seq.
type AckInput struct {
	Body struct {
		Seq int64 `json:"seq" minimum:"0" doc:"Highest seq this device has processed (and persisted)"`
	}
}

// AckOutput reports the device's cursor.
type AckOutput struct {
	Body struct {
		AckedSeq int64 `json:"acked_seq" doc:"The device's acknowledged cursor (never decreases)"`
	}
}

// WSInput is the WebSocket upgrade request (documented in docs/sync.md).
type WSInput struct {
	After int64 `query:"after" minimum:"0"`

	afterSet bool
}

// Resolve records whether ?after= was given.
func (in *WSInput) Resolve(ctx huma.Context) []error {
	in.afterSet = afterGiven(ctx)
	return nil
}

func (h *handler) registerSync(api huma.API) {
	h.acks = newAckGate(h.now)
	h.parked = newParkedSet(h.d.Stopping, h.d.Config.Limits.StreamCoalesce)
	sse.Register(api, huma.Operation{
		OperationID: "streamEvents",
		Method:      http.MethodGet,
		Path:        "/v1/events",
		Summary:     "Stream the device's feed (Server-Sent Events)",
		Description: "Streams the events of the calling device's feed: group messages while it is a member, " +
			"Welcomes and notices addressed to it. Each `message` event has `id` = seq; on reconnect " +
			"EventSource sends `Last-Event-ID` and the stream resumes after it with no gap and no duplicate. " +
			"Without a cursor the stream starts after the device's acknowledged cursor. A `ping` event is sent " +
			"every heartbeat interval (15 s by default). The stream ends when the session is revoked or " +
			"expires, or the server shuts down. At most 10 streams per client IP and 1000 in all (429 beyond). " +
			"A cursor older than what the server retains gets 410 with what the device needs to resynchronise.",
		Tags:        []string{TagSync},
		Security:    bearer,
		Errors:      []int{http.StatusUnauthorized, http.StatusUnprocessableEntity, http.StatusGone, http.StatusTooManyRequests},
		Middlewares: huma.Middlewares{h.openSSE(api)},
	}, map[string]any{
		"message": EventBody{},
		"ping":    Ping{},
	}, h.streamEvents)

	huma.Register(api, huma.Operation{
		OperationID: "syncFeed",
		Method:      http.MethodGet,
		Path:        "/v1/sync",
		Summary:     "Long-poll the device's feed",
		Description: "Returns at once with up to `limit` events after the cursor when any are waiting " +
			"(`has_more` says more are); otherwise waits up to `timeout` seconds for one and answers 200 with " +
			"no events when none came. Use `next` as the next cursor. A waiting long-poll counts as a stream " +
			"for the per-IP and total stream limits.",
		Tags:     []string{TagSync},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusUnprocessableEntity, http.StatusGone, http.StatusTooManyRequests},
	}, h.syncFeed)

	huma.Register(api, huma.Operation{
		OperationID: "ackFeed",
		Method:      http.MethodPost,
		Path:        "/v1/sync/ack",
		Summary:     "Acknowledge the feed up to a seq",
		Description: "Records that this device has processed (and persisted) every event of its feed up to " +
			"`seq`. The cursor never moves back; acknowledging beyond the newest event of the device's feed is " +
			"refused. Messages every member device has acknowledged are deleted by retention cleanup. Acks that need a " +
			"write are limited to 600 a minute per device (bursts of 20): 429 `ack_rate_limited` with `Retry-After` beyond.",
		Tags:         []string{TagSync},
		Security:     bearer,
		MaxBodyBytes: 1024,
		Errors:       []int{http.StatusUnauthorized, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, h.ackFeed)

	// The WebSocket door cannot be described in OpenAPI: it is hidden from
	// the document and specified in docs/sync.md.
	huma.Register(api, huma.Operation{
		OperationID: "websocketFeed",
		Method:      http.MethodGet,
		Path:        "/v1/ws",
		Hidden:      true,
		Security:    bearer,
	}, h.websocketFeed)
}

// stream is one open feed stream: its reader, slot and end conditions.
type stream struct {
	h         *handler
	p         *models.Principal
	reader    *realtime.Reader
	release   func()
	heartbeat time.Duration
	counted   func()      // ends its count in the open-streams gauge
	body      *bodyWriter // SSE only
	scratch   []byte      // SSE only: event header buffer
	// SSE only: the request and response, for detaching (sse_detached.go);
	// detached is set once a goroutine of its own owns the stream.
	req      *http.Request
	rw       http.ResponseWriter
	detached bool
}

// openStream checks the cursor (410), takes a stream slot (429) and
// subscribes before the backlog is read.
func (h *handler) openStream(ctx context.Context, p *models.Principal, after int64, afterSet bool, transport string) (*stream, error) {
	if !afterSet {
		acked, err := h.d.Store.AckedSeq(ctx, p.DeviceID)
		if err != nil {
			return nil, err
		}
		after = acked
	}
	if err := h.d.Store.CheckCursor(ctx, p.DeviceID, after); err != nil {
		return nil, err
	}
	release, err := h.d.Streams.Acquire(h.limitKey(ctx))
	if err != nil {
		return nil, err
	}
	sub := h.d.Hub.Subscribe(p.DeviceID, p.SessionID)
	hb := h.d.Config.Limits.HeartbeatInterval
	if hb <= 0 {
		hb = 15 * time.Second
	}
	return &stream{h: h, p: p, reader: realtime.NewReader(sub, h.d.Store, after), release: release, heartbeat: hb,
		counted: h.streamOpened(transport)}, nil
}

func (s *stream) close() {
	s.reader.Close()
	s.release()
	s.counted()
}

// context derives the stream's context: it ends with the request, at
// server shutdown and when the subscription ends.
func (s *stream) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	if s.h.d.Stopping != nil {
		stop := context.AfterFunc(s.h.d.Stopping, cancel)
		return ctx, func() { stop(); cancel() }
	}
	return ctx, cancel
}

// expired reports that the session's lifetime is over.
func (s *stream) expired() bool { return !s.h.now().Before(s.p.ExpiresAt) }

// stillValid re-checks the session in the store (defence in depth behind
// SessionsEnded, e.g. a revocation by another process).
func (s *stream) stillValid(ctx context.Context) bool {
	err := s.h.d.Store.SessionActive(ctx, s.p.SessionID)
	if err != nil && !models.IsCode(err, models.EUNAUTHORIZED) {
		s.h.log().WarnContext(ctx, "stream session check", "err", err)
		return true
	}
	return err == nil
}

type streamKey struct{}

// openSSE runs before the SSE handler: it answers 410/429 as problems
// (Huma's sse handler cannot return errors once called), sets the stream
// headers and keeps the body writer for batched writes.
func (h *handler) openSSE(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		p := PrincipalFrom(ctx.Context())
		after, afterSet, ok := sseCursor(ctx)
		if p == nil || !ok {
			next(ctx) // Huma validates the input and answers 422
			return
		}
		st, err := h.openStream(ctx.Context(), p, after, afterSet, transportSSE)
		if err != nil {
			h.writeProblem(api, ctx, err)
			return
		}
		defer func() {
			if !st.detached {
				st.close()
			}
		}()
		ctx.SetHeader("Cache-Control", "no-store")
		ctx.SetHeader("X-Accel-Buffering", "no")
		st.body = newBodyWriter(ctx.BodyWriter())
		st.req, st.rw = humago.Unwrap(ctx)
		next(huma.WithValue(ctx, streamKey{}, st))
	}
}

// sseCursor reads Last-Event-ID (which wins) or ?after=. ok is false for
// malformed values, which Huma's validation then refuses.
func sseCursor(ctx huma.Context) (after int64, set, ok bool) {
	raw, set := ctx.Header("Last-Event-ID"), true
	if raw == "" {
		raw = ctx.Query("after")
	}
	if raw == "" {
		return 0, false, true
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, set, false
	}
	return n, set, true
}

func (h *handler) streamEvents(ctx context.Context, _ *EventsInput, send sse.Sender) {
	st, _ := ctx.Value(streamKey{}).(*stream)
	if st == nil {
		return
	}
	if canDetach(st.req) && st.detach(ctx, st.rw) {
		st.detached = true
		return
	}
	ctx, cancel := st.context(ctx)
	defer cancel()
	// Send the headers now: the client knows the stream is open (and its
	// cursor accepted) before the first event or ping.
	if err := st.body.flush(); err != nil {
		return
	}
	h.streamLoop(ctx, st, func(p Ping) error { return send(sse.Message{Data: p}) })
}

// writeSSE writes a batch of message events and flushes once. The events'
// JSON is the shared encoding made once per published event; it is written
// as Huma's sender would write it ("id: <seq>", "data: <json>", blank line;
// json.Marshal output holds no newline) but directly, because Huma's sender
// re-validates every byte of pre-encoded JSON through encoding/json, which
// costs more than encoding the event again.
//
// The write deadline is renewed before each event: a client that stops
// reading is cut off within sse.WriteTimeout, but one on a slow link that
// keeps reading is never cut off in the middle of a large batch (a replay
// page of big events can take far longer than the timeout to write).
func (st *stream) writeSSE(items []*realtime.Item) error {
	hdr := st.scratch[:0]
	for _, it := range items {
		// net/http's buffer may reach the socket within the batch (a
		// detached stream's chunkWriter does not: for it this is a no-op).
		st.body.renewWriteDeadline()
		raw := it.Wire(encodeEvent)
		if raw == nil {
			return errors.New("event could not be encoded")
		}
		hdr = append(hdr[:0], "id: "...)
		hdr = strconv.AppendInt(hdr, it.Seq, 10)
		hdr = append(hdr, "\ndata: "...)
		if _, err := st.body.Write(hdr); err != nil {
			return err
		}
		if _, err := st.body.Write(raw); err != nil {
			return err
		}
		if _, err := st.body.Write(eventEnd); err != nil {
			return err
		}
	}
	st.scratch = hdr
	st.body.renewWriteDeadline()
	return st.body.flush()
}

func (h *handler) syncFeed(ctx context.Context, in *SyncInput) (*SyncOutput, error) {
	p := PrincipalFrom(ctx)
	after := in.After
	if !in.afterSet {
		acked, err := h.d.Store.AckedSeq(ctx, p.DeviceID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		after = acked
	}
	if err := h.d.Store.CheckCursor(ctx, p.DeviceID, after); err != nil {
		return nil, h.fail(ctx, err)
	}
	sub := h.d.Hub.Subscribe(p.DeviceID, p.SessionID)
	r := realtime.NewReader(sub, h.d.Store, after)
	defer r.Close()
	evs, err := r.TryNext(ctx, in.Limit)
	if err == nil && len(evs) == 0 && in.Timeout > 0 {
		release, lerr := h.d.Streams.Acquire(h.limitKey(ctx))
		if lerr != nil {
			return nil, h.fail(ctx, lerr)
		}
		defer release()
		defer h.streamOpened(transportLongPoll)()
		wait := time.Duration(in.Timeout) * time.Second
		if left := p.ExpiresAt.Sub(h.now()); left < wait {
			wait = max(left, 0)
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if h.d.Stopping != nil {
			defer context.AfterFunc(h.d.Stopping, cancel)()
		}
		evs, err = r.Next(sctx, in.Limit, timer.C)
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, realtime.ErrHubClosed)) {
			err = nil // shutting down: answer what we have; the client polls again
		}
	}
	if errors.Is(err, realtime.ErrSessionEnded) {
		return nil, h.fail(ctx, models.Errorf(models.EUNAUTHORIZED, "session_ended", "the session was ended"))
	}
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &SyncOutput{CacheControl: "no-store"}
	out.Body.Events = feedEvents(evs)
	out.Body.Next = r.Cursor()
	out.Body.HasMore = len(evs) > 0 && r.More()
	return out, nil
}

func (h *handler) ackFeed(ctx context.Context, in *AckInput) (*AckOutput, error) {
	p := PrincipalFrom(ctx)
	acked, err := h.ack(ctx, p.DeviceID, in.Body.Seq, false)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AckOutput{}
	out.Body.AckedSeq = acked
	return out, nil
}

// writeProblem answers a problem from middleware, with its headers.
func (h *handler) writeProblem(api huma.API, ctx huma.Context, err error) {
	se := h.fail(ctx.Context(), err)
	p, ok := se.(*Problem)
	if !ok {
		_ = huma.WriteErr(api, ctx, http.StatusInternalServerError, "internal error")
		return
	}
	for k, vs := range p.headers {
		for _, v := range vs {
			ctx.AppendHeader(k, v)
		}
	}
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(p.Status)
	if err := api.Marshal(ctx.BodyWriter(), "application/problem+json", p); err != nil {
		h.log().WarnContext(ctx.Context(), "write problem", "err", err)
	}
}

// eventEnd ends an SSE event.
var eventEnd = []byte("\n\n")

// bodyWriter is an SSE response body: writes go to a buffer (net/http's,
// or a detached stream's chunkWriter) and reach the client on flush.
type bodyWriter struct {
	w       io.Writer
	flushFn func() error
	// deadlineFn sets the write deadline of net/http's connection; nil for
	// a detached stream, whose writes reach the socket only on flush and
	// whose chunkWriter sets a deadline only around a write that has to
	// wait.
	deadlineFn func(time.Time)
}

// newBodyWriter wraps net/http's response body; its controller is made once
// per stream.
func newBodyWriter(w io.Writer) *bodyWriter {
	b := &bodyWriter{w: w}
	if rw, ok := w.(http.ResponseWriter); ok {
		rc := http.NewResponseController(rw)
		b.flushFn = rc.Flush
		b.deadlineFn = func(t time.Time) { _ = rc.SetWriteDeadline(t) }
	}
	return b
}

func (b *bodyWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b *bodyWriter) flush() error {
	if b.flushFn != nil {
		return b.flushFn()
	}
	return nil
}

// renewWriteDeadline gives the writes that follow sse.WriteTimeout to
// reach the client.
func (b *bodyWriter) renewWriteDeadline() {
	if b.deadlineFn != nil {
		b.deadlineFn(time.Now().Add(sse.WriteTimeout))
	}
}
