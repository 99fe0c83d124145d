package server

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/metrics"
)

// statusRecorder remembers the status and size of a response while keeping
// Flush, Hijack and Unwrap working for streams and WebSockets.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// upgrade: the request asked to switch protocols (a hijack answers
	// 101); other hijacked requests are streams answered 200 by hand.
	upgrade bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		if r.status == 0 {
			r.status = http.StatusOK
			if r.upgrade {
				r.status = http.StatusSwitchingProtocols
			}
		}
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests logs one line per request: method, path (never the query,
// never headers or bodies), status, bytes, duration and client address.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, upgrade: r.Header.Get("Upgrade") != ""}
		ctx := metrics.EnsureOperationSlot(r.Context())
		next.ServeHTTP(rec, r.WithContext(ctx))
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			level = slog.LevelDebug
		}
		if rec.status >= 500 {
			level = slog.LevelError
		}
		op := metrics.Operation(ctx)
		if op == "" {
			op = pathOperation(r.URL.Path)
		}
		// Metadata stays out of the logs at the default level: the
		// operation, not the path (which names groups, users, devices),
		// and no client address (the audit log keeps those it must, for
		// --ip-retention). At debug level both are added.
		attrs := []any{"method", r.Method, "operation", op, "status", rec.status, "bytes", rec.bytes,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000}
		if log.Enabled(ctx, slog.LevelDebug) {
			attrs = append(attrs, "path", r.URL.Path, "client", clientip.From(ctx).String())
		}
		log.Log(ctx, level, "request", attrs...)
	})
}

// securityHeaders sets headers every response carries. Pages that need a
// looser policy (docs, admin UI) set their own Content-Security-Policy.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.TLS != nil {
			// Served over TLS (--tls-cert): browsers must never come back
			// over plain http. Subdomains are left alone (they may be
			// other people's services).
			h.Set("Strict-Transport-Security", "max-age=63072000")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a 500 and a log line with the
// stack, instead of a dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic in handler", "panic", p, "path", r.URL.Path, "stack", string(debug.Stack()))
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"title":"Internal Server Error","status":500,"detail":"internal error","code":"internal"}`))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// notFound answers unknown paths with a problem document.
// methodNotAllowed answers 405 problem+json naming the allowed methods.
func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write([]byte(`{"title":"Method Not Allowed","status":405,"detail":"use ` + allow + `","code":"method_not_allowed"}`))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"title":"Not Found","status":404,"detail":"no such resource","code":"not_found"}`))
}
