package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// WriterStatsJSON is the body of /debug/writer on the pprof listener: the
// single writer's counters since start, for benchmarks to read before and
// after a run.
type WriterStatsJSON struct {
	Batches      uint64 `json:"batches"`
	UseCases     uint64 `json:"use_cases"`
	RunningNanos int64  `json:"running_ns"`
	CommitNanos  int64  `json:"commit_ns"`
	Syncs        uint64 `json:"syncs"`
	SyncNanos    int64  `json:"sync_ns"`
}

func (s *Server) serveWriterStats(w http.ResponseWriter, _ *http.Request) {
	st := s.store.WriterStats()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(WriterStatsJSON{Batches: st.Batches, UseCases: st.UseCases,
		RunningNanos: int64(st.Running), CommitNanos: int64(st.Commit), Syncs: st.Syncs, SyncNanos: int64(st.Syncing)})
}

// startPprof serves Go's profiles and the writer's counters on --pprof-listen (validated to be a
// loopback address) until the returned stop is called. It is a debugging
// aid for benchmarks: profiles reveal internals, so never on the network.
func (s *Server) startDebug() (stop func(), err error) {
	if s.cfg.PprofListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.PprofListen)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", s.cfg.PprofListen, err)
	}
	if !isLoopback(ln.Addr()) {
		_ = ln.Close()
		return nil, fmt.Errorf("pprof: %s is not a loopback address", ln.Addr())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/writer", s.serveWriterStats)
	mux.Handle("/metrics", s.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("pprof server stopped", "err", err)
		}
	}()
	s.log.Warn("pprof profiles served (debugging only)", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
