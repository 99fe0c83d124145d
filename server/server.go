// Package server wires Sovereign together: configuration, store, API,
// middleware and listeners, and runs them until the context ends, then shuts
// down gracefully (stop accepting, end streams, finish writes, close the DB).
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/api"
	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/maintenance"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/web"
)

// Options are the parts of a server that tests replace.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is a running Sovereign instance.
type Server struct {
	cfg        config.Config
	log        *slog.Logger
	store      *store.Store
	hub        *realtime.Hub
	api        huma.API
	handler    http.Handler
	stopping   context.Context
	stopStream context.CancelFunc
	cleanup    *maintenance.Runner
	closeOnce  sync.Once
}

// New opens the store and builds the HTTP handler; it does not listen.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hub := realtime.New(realtime.Options{})
	st, err := store.Open(ctx, store.Options{
		Path:                     cfg.DBPath(),
		AllowInsecurePermissions: cfg.AllowInsecurePermissions,
		Synchronous:              cfg.Synchronous,
		GroupQuotaBytes:          cfg.Limits.GroupQuotaBytes,
		Now:                      opts.Now,
		Logger:                   log,
		Publisher:                hub,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	wa, err := handlers.NewWebAuthn(cfg.RPID, cfg.RPName, cfg.RPOrigins, cfg.Limits.CeremonyTimeout)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("configure WebAuthn: %w", err)
	}
	if err := bootstrapAdmin(ctx, cfg, st, log); err != nil {
		_ = st.Close()
		return nil, err
	}
	stopping, stopStreams := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: log, store: st, hub: hub, stopping: stopping, stopStream: stopStreams}

	deps := &handlers.Deps{
		Store: st, Config: cfg, Log: log, Now: opts.Now, Stopping: stopping, WebAuthn: wa,
		Hub:     hub,
		Streams: realtime.NewStreamLimiter(cfg.Limits.StreamsPerIP, cfg.Limits.StreamsTotal),
	}
	mux := http.NewServeMux()
	s.api = api.New(mux, deps)
	mux.Handle("/docs", web.DocsHandler())
	mux.Handle("/docs/", web.DocsHandler())
	mux.HandleFunc("/", notFound)

	resolver := clientip.NewResolver(cfg.TrustedProxyPrefixes())
	s.handler = recoverPanics(log, resolver.Middleware(logRequests(log, securityHeaders(mux))))

	s.cleanup = maintenance.New(cfg.CleanupInterval, log)
	s.cleanup.Add(CleanupTasks(st, cfg)...)
	s.cleanup.Start()
	return s, nil
}

// AdminInviteTTL is how long the first-start admin invite lasts.
const AdminInviteTTL = 72 * time.Hour

// bootstrapAdmin makes sure a fresh server can get its first admin: when no
// admin exists and no usable admin invite exists, it creates a one-use admin
// invite and prints its code and link to the log, once. Later starts only
// say that an admin invite exists and how to make a new one.
func bootstrapAdmin(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger) error {
	b, err := st.EnsureAdminInvite(ctx, AdminInviteTTL)
	if err != nil {
		return fmt.Errorf("bootstrap admin invite: %w", err)
	}
	switch {
	case b.AdminExists:
	case b.Code != "":
		// The one deliberate secret in the log: there is no admin yet to
		// hand it out any other way. It is shown once and works once.
		log.Warn("NO ADMIN YET: register the first admin with this one-time invite (shown only now)",
			"invite_code", b.Code, "link", InviteLink(cfg, b.Code), "expires_at", b.ExpiresAt.Format(time.RFC3339))
	default:
		log.Warn("no admin yet: an admin invite exists (its code was printed when it was created); "+
			"to make a new one run `sovereign invite --admin`", "expires_at", b.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// InviteLink is the link that opens registration with an invite code. The
// code is in the fragment, which browsers never send to servers or proxies.
func InviteLink(cfg config.Config, code string) string {
	return cfg.BaseURL() + "/invite#" + code
}

// endedSessionGrace is how long expired or revoked sessions stay before the
// cleanup deletes them.
const endedSessionGrace = 24 * time.Hour

// deadInviteGrace is how long expired or used-up invites stay before the
// cleanup deletes them.
const deadInviteGrace = 7 * 24 * time.Hour

// CleanupTasks are the periodic cleanups of the store. Features that keep
// data with a lifetime add theirs here.
func CleanupTasks(st *store.Store, cfg config.Config) []maintenance.Task {
	claimAge := cfg.Limits.KeyPackageMaxLifetime + store.KeyPackageClockSkew + 24*time.Hour
	return []maintenance.Task{
		{Name: "expired_key_packages", Run: st.DeleteExpiredKeyPackages},
		{Name: "revoked_device_key_packages", Run: st.DeleteRevokedDeviceKeyPackages},
		{Name: "old_key_package_claims", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteOldKeyPackageClaims(ctx, claimAge)
		}},
		{Name: "ended_sessions", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteEndedSessions(ctx, endedSessionGrace)
		}},
		{Name: "expired_events", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteExpiredEvents(ctx, st.Now().Add(-cfg.Limits.Retention))
		}},
		{Name: "expired_idempotency_keys", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteExpiredIdempotencyKeys(ctx, st.Now().Add(-store.IdempotencyTTL))
		}},
		{Name: "expired_ceremonies", Run: st.DeleteExpiredCeremonies},
		{Name: "dead_invites", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteDeadInvites(ctx, deadInviteGrace)
		}},
		{Name: "acked_events", Run: st.DeleteAckedEvents},
	}
}

// Maintenance is the periodic cleanup runner (tests run it with RunOnce).
func (s *Server) Maintenance() *maintenance.Runner { return s.cleanup }

// Handler is the server's whole HTTP handler, for httptest.
func (s *Server) Handler() http.Handler { return s.handler }

// Hub exposes the real-time hub (tests and benchmarks use it).
func (s *Server) Hub() *realtime.Hub { return s.hub }

// Store exposes the store (tests and CLI commands use it).
func (s *Server) Store() *store.Store { return s.store }

// Close ends streams and closes the store. It is safe to call twice.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.stopStream()
		s.hub.Close()
		s.cleanup.Stop()
		err = s.store.Close()
	})
	return err
}

// Run listens on the configured address until ctx ends, then shuts down
// gracefully within the configured timeout. ready, if not nil, receives the
// bound address once listening.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	tlsOn := s.cfg.TLSCert != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	} else if !isLoopback(ln.Addr()) {
		s.log.Warn("SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: session tokens cross the network in clear. "+
			"Use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a TLS-terminating reverse proxy.", "addr", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.stopStream)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	s.log.Info("sovereign listening", "addr", ln.Addr().String(), "scheme", scheme, "db", s.cfg.DBPath(),
		"docs", fmt.Sprintf("%s://%s/docs", scheme, ln.Addr().String()))
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-errc:
		_ = s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("graceful shutdown timed out; closing connections")
		_ = srv.Close()
		err = nil
	}
	if cerr := s.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	s.log.Info("stopped")
	return err
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ok && ip.Unmap().IsLoopback()
}
