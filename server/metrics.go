package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sovereign-im/sovereign/metrics"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/store"
)

// Server-level metrics: HTTP requests by operation and status with their
// latency, the single writer's batches and commit time, the hub, the
// database size. Handlers add theirs (streams, messages) through
// handlers.Deps.Metrics; other features add theirs the same way, one line
// each.

// requestMetrics observes every request of a listener.
type requestMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newRequestMetrics(m *metrics.Registry) *requestMetrics {
	return &requestMetrics{
		requests: m.Counter("http_requests_total", "HTTP requests answered, by operation (the OpenAPI operation id, or docs, admin_ui, invite, openapi, metrics, unmatched) and status.",
			"operation", "status"),
		latency: m.Histogram("http_request_duration_seconds", "Time to answer a request, by operation (streams and waiting long-polls are left out: they last as long as the client stays).",
			metrics.LatencyBuckets, "operation"),
	}
}

// streamOperations last as long as a client stays; their duration says
// nothing about latency.
var streamOperations = map[string]bool{"streamEvents": true, "websocketFeed": true, "syncFeed": true}

// middleware counts each request under its operation; rec is the status
// recorder of the logging middleware beneath.
func (rm *requestMetrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w}
		}
		ctx := metrics.EnsureOperationSlot(r.Context())
		next.ServeHTTP(rec, r.WithContext(ctx))
		op := metrics.Operation(ctx)
		if op == "" {
			op = pathOperation(r.URL.Path)
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		rm.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
		if !streamOperations[op] {
			rm.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
		}
	})
}

// pathOperation labels the requests no API operation claims, from a fixed
// set (never the raw path: the label set stays bounded).
func pathOperation(p string) string {
	switch {
	case p == "/docs" || strings.HasPrefix(p, "/docs/"):
		return "docs"
	case p == "/admin" || strings.HasPrefix(p, "/admin/"):
		return "admin_ui"
	case p == "/invite":
		return "invite"
	case strings.HasPrefix(p, "/openapi"):
		return "openapi"
	case p == "/metrics":
		return "metrics"
	default:
		return "unmatched"
	}
}

// registerServerMetrics adds the store's and the hub's figures, read at
// scrape time.
func registerServerMetrics(m *metrics.Registry, st *store.Store, hub *realtime.Hub) {
	m.CounterFunc("writer_batches_total", "Transactions the single writer committed (each holds one or more use cases).",
		func() float64 { return float64(st.WriterStats().Batches) })
	m.CounterFunc("writer_use_cases_total", "Write use cases the single writer committed.",
		func() float64 { return float64(st.WriterStats().UseCases) })
	m.CounterFunc("writer_commit_seconds_total", "Time the single writer spent committing (page writes and fsync); divide its rate by the batches' for the mean commit time.",
		func() float64 { return st.WriterStats().Commit.Seconds() })
	m.CounterFunc("writer_running_seconds_total", "Time the single writer spent running use cases inside its transactions.",
		func() float64 { return st.WriterStats().Running.Seconds() })
	m.GaugeFunc("database_bytes", "Size of the database: SQLite's file plus its write-ahead log, or PostgreSQL's pg_database_size.", func() float64 {
		return float64(st.DatabaseBytes(context.Background()))
	})
	m.CounterFunc("hub_events_published_total", "Committed events the real-time hub fanned out.",
		func() float64 { return float64(hub.Stats().Published) })
	m.CounterFunc("hub_lags_total", "Times a stream fell behind the hub's buffer and read from the store instead.",
		func() float64 { return float64(hub.Stats().Lags) })
	m.GaugeFunc("hub_buffered_events", "Events waiting in the hub's per-stream buffers (feed lag held in memory).",
		func() float64 { return float64(hub.Stats().Buffered) })
}

// withMetrics serves /metrics from reg before handing other paths to next.
func withMetrics(reg *metrics.Registry, next http.Handler) http.Handler {
	h := reg.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
