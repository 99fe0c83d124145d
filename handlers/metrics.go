package handlers

import (
	"errors"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sovereign-im/sovereign/metrics"
	"github.com/sovereign-im/sovereign/realtime"
)

// Stream transports, the label of the open-streams gauge.
const (
	transportSSE       = "sse"
	transportWebSocket = "websocket"
	transportLongPoll  = "longpoll"
)

// handlerMetrics are the figures the HTTP edge keeps: open streams by
// transport, messages and commits accepted or refused (by problem code),
// and how long committed events took to reach a stream.
type handlerMetrics struct {
	streams   *prometheus.GaugeVec
	delivery  *prometheus.CounterVec
	streamLag prometheus.Observer
}

func newHandlerMetrics(m *metrics.Registry) *handlerMetrics {
	hm := &handlerMetrics{
		streams: m.Gauge("streams_open", "Event streams open now, by transport (sse, websocket, longpoll: a waiting long-poll).", "transport"),
		delivery: m.Counter("group_messages_total",
			"Group messages and commits sent, by kind (message, commit), result (accepted, refused) and reason (the problem code; \"\" when accepted).",
			"kind", "result", "reason"),
		streamLag: m.Histogram("feed_delivery_lag_seconds",
			"Time from an event's commit to its write on an open stream (SSE or WebSocket).",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300}).WithLabelValues(),
	}
	for _, t := range []string{transportSSE, transportWebSocket, transportLongPoll} {
		hm.streams.WithLabelValues(t)
	}
	return hm
}

// nameOperation tells the server's request metrics which operation a
// request is (Huma middleware; the label is the OpenAPI operation id).
func nameOperation(ctx huma.Context, next func(huma.Context)) {
	if op := ctx.Operation(); op != nil {
		metrics.SetOperation(ctx.Context(), op.OperationID)
	}
	next(ctx)
}

// countDelivery records the outcome of a send or commit; err is the
// handler's returned error.
func (h *handler) countDelivery(kind string, err *error) {
	if *err == nil {
		h.m.delivery.WithLabelValues(kind, "accepted", "").Inc()
		return
	}
	reason := "internal"
	var p *Problem
	var se huma.StatusError
	switch {
	case errors.As(*err, &p):
		reason = p.Code
	case errors.As(*err, &se) && se.GetStatus() == 422:
		reason = "validation_failed"
	}
	h.m.delivery.WithLabelValues(kind, "refused", reason).Inc()
}

// streamOpened counts an open stream of transport until the returned
// function is called.
func (h *handler) streamOpened(transport string) (closed func()) {
	g := h.m.streams.WithLabelValues(transport)
	g.Inc()
	return g.Dec
}

// delivered records the delivery lag of events just written to a stream.
func (h *handler) delivered(items []*realtime.Item) { h.deliveredAt(items, time.Now()) }

// deliveredAt records the delivery lag of events written to a stream at now.
func (h *handler) deliveredAt(items []*realtime.Item, now time.Time) {
	for _, it := range items {
		if !it.ServerTime.IsZero() {
			h.m.streamLag.Observe(now.Sub(it.ServerTime).Seconds())
		}
	}
}
