// Package server wires Sovereign together: configuration, store, API,
// middleware and listeners, and runs them until the context ends, then shuts
// down gracefully (stop accepting, end streams, finish writes, close the DB).
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/api"
	"github.com/sovereign-im/sovereign/blobstore"
	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/docs"
	"github.com/sovereign-im/sovereign/egress"
	"github.com/sovereign-im/sovereign/geoip"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/maintenance"
	"github.com/sovereign-im/sovereign/metrics"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/push"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/web"
)

// Options are the parts of a server that tests replace.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AdminReady, if not nil, receives the bound admin address once Run
	// listens on it (only with --admin-listen).
	AdminReady func(addr net.Addr)
	// PushRootCAs replaces the system roots for push endpoints (tests run
	// a TLS push service of their own).
	PushRootCAs *x509.CertPool
	// PushMinGap overrides the least time between two pushes to a device.
	PushMinGap time.Duration
}

// Server is a running Sovereign instance.
type Server struct {
	cfg        config.Config
	log        *slog.Logger
	store      *store.Store
	hub        *realtime.Hub
	api        huma.API
	handler    http.Handler
	admin      http.Handler // nil unless --admin-listen is set
	settings   *settings.Live
	adminReady func(net.Addr)
	stopping   context.Context
	stopStream context.CancelFunc
	cleanup    *maintenance.Runner
	metrics    *metrics.Registry
	backups    *BackupScheduler // nil without --backup-dir
	stopBackup func()
	push       *push.Worker // nil with --push=false
	closeOnce  sync.Once
	blobs      blobstore.Blobs
	geo        *geoip.DB // nil without --geoip-db
}

// New opens the store and builds the HTTP handler; it does not listen.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	config.Derive(&cfg)
	geo, err := openGeoIP(cfg, log)
	if err != nil {
		return nil, err
	}
	hub := realtime.New(realtime.Options{})
	var pushOnline func(string) bool
	if cfg.Push {
		pushOnline = hub.Online
	}
	st, err := store.Open(ctx, store.Options{
		Database:                 cfg.Database,
		PushOnline:               pushOnline,
		Path:                     cfg.DBPath(),
		AllowInsecurePermissions: cfg.AllowInsecurePermissions,
		Synchronous:              cfg.Synchronous,
		GroupQuotaBytes:          cfg.Limits.GroupQuotaBytes,
		RequirePadding:           cfg.Limits.RequirePadding,
		UserQuotaBytes:           cfg.Limits.UserQuotaBytes,
		Now:                      opts.Now,
		Logger:                   log,
		Publisher:                hub,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	blobs, err := blobstore.NewLocal(cfg.AttachmentsDir())
	if err != nil {
		_ = st.Close()
		return nil, err
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
	live, err := loadSettings(ctx, cfg, st, log)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	stopping, stopStreams := context.WithCancel(context.Background())
	reg := metrics.New()
	registerServerMetrics(reg, st, hub)
	s := &Server{cfg: cfg, log: log, store: st, hub: hub, settings: live, adminReady: opts.AdminReady, stopping: stopping, stopStream: stopStreams,
		metrics: reg, blobs: blobs, geo: geo}

	deps := &handlers.Deps{
		Store: st, Config: cfg, Log: log, Now: opts.Now, Stopping: stopping, WebAuthn: wa,
		Hub:      hub,
		Streams:  realtime.NewStreamLimiter(cfg.Limits.StreamsPerIP, cfg.Limits.StreamsTotal),
		Settings: live,
		Metrics:  reg,
		Blobs:    blobs,
	}
	if geo != nil { // a nil *geoip.DB must not become a non-nil Locator
		deps.GeoIP = geo
	}
	if cfg.Push {
		vapid, err := push.LoadVAPID(ctx, st)
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("push: %w", err)
		}
		policy := &egress.Policy{AllowHosts: cfg.PushAllowHosts, RootCAs: opts.PushRootCAs}
		s.push = push.NewWorker(st, vapid, push.Config{Contact: PushContact(cfg), Policy: policy, Online: hub.Online,
			MinGap: opts.PushMinGap, Now: opts.Now, Log: log, Metrics: reg})
		if err := s.push.Start(ctx); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("push: %w", err)
		}
		deps.Push = &handlers.PushDeps{VAPIDPublicKey: vapid.Public, Policy: policy}
		registerPushMetrics(reg, st)
	}
	mux := http.NewServeMux()
	s.api = api.New(mux, deps)
	mux.Handle(docs.ClientsGuidePath, docs.ClientsGuide())
	mux.Handle("/docs", web.DocsHandler())
	mux.Handle("/docs/", web.DocsHandler())
	mux.Handle("/admin", web.AdminHandler())
	mux.Handle("/admin/", web.AdminHandler())
	mux.Handle("/app", web.AppHandler())
	mux.Handle("/app/", web.AppHandler())
	mux.HandleFunc("/", notFound)

	resolver := clientip.NewResolver(cfg.TrustedProxyPrefixes())
	rm := newRequestMetrics(reg)
	wrap := func(h http.Handler) http.Handler {
		return recoverPanics(log, resolver.Middleware(logRequests(log, rm.middleware(securityHeaders(withCORS(cfg.CORSOrigins, h))))))
	}
	if cfg.AdminListen == "" {
		s.handler = wrap(withInvite(inviteRouter(true, false), mux))
	} else {
		// The admin UI and API live only on the admin address; the public
		// listener answers 404 for them as for any unknown path, and sends
		// invite links to the member app. Metrics are served on the admin
		// address only (and on the debug listener).
		s.handler = wrap(withInvite(inviteRouter(false, false), only(func(p string) bool { return !IsAdminPath(p) }, mux)))
		s.admin = wrap(withMetrics(reg, withInvite(inviteRouter(true, true), only(adminListenerServes, mux))))
	}

	s.cleanup = maintenance.New(cfg.CleanupInterval, log)
	s.cleanup.Add(CleanupTasks(st, cfg)...)
	s.cleanup.Add(AttachmentCleanupTasks(st, blobs, cfg)...)
	// Several instances on one PostgreSQL database: only the leader runs
	// the periodic cleanup (on SQLite the one process always leads).
	lead := st.StartLeader(LeaderRetry)
	s.cleanup.SetGate(lead.IsLeader)
	registerCleanupMetrics(reg, s.cleanup, lead)
	s.cleanup.Start()
	s.stopBackup = func() {}
	if cfg.BackupDir != "" {
		s.backups = &BackupScheduler{st: st, dir: cfg.BackupDir, files: cfg.AttachmentsDir(), every: cfg.BackupEvery, keep: cfg.BackupKeep, log: log, now: opts.Now}
		bctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.backups.run(bctx) }()
		s.stopBackup = func() { cancel(); <-done }
	}
	return s, nil
}

// IsAdminPath reports whether a request path belongs to the admin UI or the
// admin API.
func IsAdminPath(p string) bool {
	return p == "/admin" || strings.HasPrefix(p, "/admin/") || p == "/v1/admin" || strings.HasPrefix(p, "/v1/admin/")
}

// adminListenerServes is what a separate admin address serves: the admin
// UI and API, the passkey ceremonies and account endpoints the UI signs in
// with, and the health probes.
func adminListenerServes(p string) bool {
	return IsAdminPath(p) || strings.HasPrefix(p, "/v1/auth/") || p == "/v1/me" || strings.HasPrefix(p, "/v1/me/") ||
		p == "/healthz" || p == "/readyz"
}

// only passes requests whose path allow accepts and answers 404 otherwise.
// Paths are checked as the mux routes them (decoded); the mux redirects
// unclean paths to clean ones, which then come back here.
func only(allow func(string) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(r.URL.Path) {
			notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loadSettings reads the admin's stored overrides over the configuration.
func loadSettings(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger) (*settings.Live, error) {
	live := settings.NewLive(cfg)
	stored, err := st.LoadSettings(ctx)
	if err != nil {
		return nil, fmt.Errorf("load settings: %w", err)
	}
	o, bad := settings.Decode(stored)
	if len(bad) > 0 {
		log.Warn("ignoring stored settings this version cannot use", "keys", bad)
	}
	if len(o.Names()) > 0 {
		log.Info("run-time settings override the configuration", "overrides", o.String())
	}
	live.Set(o)
	return live, nil
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
	tasks := []maintenance.Task{
		{Name: "expired_key_packages", Run: st.DeleteExpiredKeyPackages},
		{Name: "key_package_expiry_notices", Run: func(ctx context.Context) (int64, error) {
			return st.NotifyExpiringKeyPackages(ctx, min(store.KeyPackageExpiryWarning, cfg.Limits.KeyPackageMaxLifetime/4))
		}},
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
		{Name: "old_audit_ips", Run: func(ctx context.Context) (int64, error) {
			return st.ForgetOldAuditIPs(ctx, st.Now().Add(-ipRetention(cfg)))
		}},
	}
	if cfg.Limits.AuditRetention > 0 {
		tasks = append(tasks, maintenance.Task{Name: "old_audit_entries", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteOldAuditEntries(ctx, st.Now().Add(-cfg.Limits.AuditRetention))
		}})
	}
	return tasks
}

// LeaderRetry is how often an instance that does not lead tries to take
// over, and how often the leader checks that it still holds the lock.
const LeaderRetry = time.Second

// registerCleanupMetrics exposes the periodic cleanup's passes and whether
// this instance leads (runs them).
func registerCleanupMetrics(reg *metrics.Registry, r *maintenance.Runner, lead *store.Leader) {
	reg.CounterFunc("cleanup_passes_total", "Periodic cleanup passes this instance ran.", func() float64 { return float64(r.Passes()) })
	reg.CounterFunc("cleanup_passes_skipped_total", "Periodic cleanup passes this instance skipped because another instance leads.",
		func() float64 { return float64(r.Skipped()) })
	reg.GaugeFunc("cleanup_leader", "1 when this instance runs the periodic cleanup for every instance on the database, else 0.",
		func() float64 {
			if lead.IsLeader() {
				return 1
			}
			return 0
		})
}

// PushContact is the VAPID sub claim: --push-contact, else the public URL
// when it is https, else mailto:admin@ the RP ID.
func PushContact(cfg config.Config) string {
	if cfg.PushContact != "" {
		return cfg.PushContact
	}
	if base := cfg.BaseURL(); strings.HasPrefix(base, "https://") {
		return base
	}
	return "mailto:admin@" + cfg.RPID
}

// registerPushMetrics adds the push tables' sizes, read at each scrape.
func registerPushMetrics(reg *metrics.Registry, st *store.Store) {
	read := func(f func(store.PushStats) int64) func() float64 {
		return func() float64 {
			ps, err := st.PushStats(context.Background())
			if err != nil {
				return 0
			}
			return float64(f(ps))
		}
	}
	reg.GaugeFunc("push_subscriptions", "Devices with a Web Push subscription.", read(func(p store.PushStats) int64 { return p.Subscriptions }))
	reg.GaugeFunc("push_outbox", "Devices with a push waiting in the outbox.", read(func(p store.PushStats) int64 { return p.Outbox }))
}

// Push is the push worker, or nil with --push=false.
func (s *Server) Push() *push.Worker { return s.push }

// AttachmentCleanupTasks delete attachments past the retention period and
// uploads left incomplete for a day (rows, freeing quota), then the files no
// row names (those rows, and rows deleted with their group).
func AttachmentCleanupTasks(st *store.Store, blobs blobstore.Blobs, cfg config.Config) []maintenance.Task {
	return []maintenance.Task{
		{Name: "expired_attachments", Run: func(ctx context.Context) (int64, error) {
			return st.DeleteExpiredAttachments(ctx, st.Now().Add(-cfg.Limits.Retention))
		}},
		{Name: "attachment_files", Run: func(ctx context.Context) (int64, error) {
			return st.SweepAttachmentFiles(ctx, blobs)
		}},
	}
}

// Blobs is the attachment blob store.
func (s *Server) Blobs() blobstore.Blobs { return s.blobs }

// Metrics is the server's metrics registry.
func (s *Server) Metrics() *metrics.Registry { return s.metrics }

// Backups is the backup scheduler, or nil without --backup-dir.
func (s *Server) Backups() *BackupScheduler { return s.backups }

// Maintenance is the periodic cleanup runner (tests run it with RunOnce).
func (s *Server) Maintenance() *maintenance.Runner { return s.cleanup }

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
			"invite_code", b.Code, "link", InviteLink(cfg, b.Code, models.RoleAdmin), "expires_at", b.ExpiresAt.Format(time.RFC3339))
	default:
		log.Warn("no admin yet: an admin invite exists (its code was printed when it was created); "+
			"to make a new one run `sovereign invite --admin`", "expires_at", b.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// InviteLink is the link that opens registration with an invite of role:
// admin invites lead to the admin UI (on --admin-listen when set), member
// invites to the public address.
func InviteLink(cfg config.Config, code string, role models.Role) string {
	return cfg.InviteLinkFor(code, role == models.RoleAdmin)
}

// Handler is the server's public HTTP handler, for httptest. Without
// --admin-listen it serves the admin UI and API too.
func (s *Server) Handler() http.Handler { return s.handler }

// AdminHandler is the handler of the separate admin address, or nil when
// --admin-listen is not set.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Settings are the live run-time settings.
func (s *Server) Settings() *settings.Live { return s.settings }

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
		s.stopBackup()
		if s.push != nil {
			s.push.Stop()
		}
		err = s.store.Close()
		if s.geo != nil {
			_ = s.geo.Close()
		}
		st := s.store.WriterStats()
		s.log.Info("writer stopped", "commits", st.Batches, "use_cases", st.UseCases,
			"running", st.Running.Round(time.Millisecond), "committing", st.Commit.Round(time.Millisecond))
	})
	return err
}

// openGeoIP opens --geoip-db, or returns nil when it is not set (the
// default: sign-in notices carry no location).
func openGeoIP(cfg config.Config, log *slog.Logger) (*geoip.DB, error) {
	if cfg.GeoIPDB == "" {
		return nil, nil
	}
	db, err := geoip.Open(cfg.GeoIPDB)
	if err != nil {
		return nil, fmt.Errorf("--geoip-db: %w", err)
	}
	log.Info("new-device notices carry the sign-in's country and city", "geoip_db", cfg.GeoIPDB, "type", db.Type())
	return db, nil
}

// Listeners are the bound sockets of a server: the API address and, with
// --admin-listen, the admin address. Binding before New lets a listen
// address with port 0 become the real one before the WebAuthn origins are
// derived from it (config.WithBoundAddresses).
type Listeners struct {
	API   net.Listener
	Admin net.Listener // nil without --admin-listen
}

// Listen binds the configured addresses.
func Listen(cfg config.Config) (*Listeners, error) {
	api, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (api): %w", cfg.Listen, err)
	}
	ls := &Listeners{API: api}
	if cfg.AdminListen != "" {
		if ls.Admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			_ = api.Close()
			return nil, fmt.Errorf("listen on %s (admin): %w", cfg.AdminListen, err)
		}
	}
	return ls, nil
}

// Addresses are the bound addresses (admin empty without --admin-listen).
func (l *Listeners) Addresses() (api, admin string) {
	api = l.API.Addr().String()
	if l.Admin != nil {
		admin = l.Admin.Addr().String()
	}
	return api, admin
}

// Close closes every listener.
func (l *Listeners) Close() {
	_ = l.API.Close()
	if l.Admin != nil {
		_ = l.Admin.Close()
	}
}

// Run listens on the configured address (and on the admin address when one
// is set) until ctx ends, then shuts down gracefully within the configured
// timeout. ready, if not nil, receives the bound public address once
// listening.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ls, err := Listen(s.cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ls, ready)
}

// Serve serves on bound listeners until ctx ends, then shuts down
// gracefully within the configured timeout. ready, if not nil, receives
// the bound public address once serving.
func (s *Server) Serve(ctx context.Context, bound *Listeners, ready func(addr net.Addr)) error {
	tlsCfg, err := s.tlsConfig()
	if err != nil {
		bound.Close()
		return err
	}
	type listener struct {
		name string
		ln   net.Listener
		srv  *http.Server
	}
	var ls []listener
	closeAll := func() {
		for _, l := range ls {
			_ = l.ln.Close()
		}
	}
	add := func(name string, ln net.Listener, h http.Handler) {
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		} else if !isLoopback(ln.Addr()) {
			s.log.Warn("SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: session tokens cross the network in clear. "+
				"Use --tls-cert/--tls-key, or listen on 127.0.0.1 behind a TLS-terminating reverse proxy.", "addr", ln.Addr().String(), "listener", name)
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		srv.RegisterOnShutdown(s.stopStream)
		ls = append(ls, listener{name: name, ln: ln, srv: srv})
	}
	add("api", bound.API, s.handler)
	if s.admin != nil {
		if bound.Admin == nil {
			bound.Close()
			return errors.New("serve: --admin-listen is set but no admin listener was bound")
		}
		add("admin", bound.Admin, s.admin)
	} else if bound.Admin != nil {
		_ = bound.Admin.Close()
	}
	stopDebug, err := s.startDebug()
	if err != nil {
		closeAll()
		return err
	}
	defer stopDebug()

	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- l.srv.Serve(l.ln) }()
	}
	s.logListening(ls[0].ln.Addr())
	if s.admin != nil {
		adm := ls[1].ln.Addr()
		s.log.Info("admin listening", "addr", adm.String(), "admin", s.cfg.AdminBaseURL()+"/admin")
		if !isLoopback(adm) {
			s.log.Warn("the admin UI and API listen on a non-loopback address: reach them from localhost or a VPN where you can", "addr", adm.String())
		}
	}
	if ready != nil {
		ready(ls[0].ln.Addr())
	}
	if s.admin != nil && s.adminReady != nil {
		s.adminReady(ls[1].ln.Addr())
	}

	select {
	case err := <-errc:
		closeAll()
		_ = s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.srv.Shutdown(shutdownCtx)
			if errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("graceful shutdown timed out; closing connections", "listener", l.name)
				_ = l.srv.Close()
				err = nil
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	err = errors.Join(errs...)
	if cerr := s.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	s.log.Info("stopped")
	return err
}

// logListening says where the server listens and the URLs that work in a
// browser (the public URL and origins, never 127.0.0.1 or [::], on which
// passkeys cannot work).
func (s *Server) logListening(addr net.Addr) {
	base := s.cfg.BaseURL()
	attrs := []any{"addr", addr.String(), "url", base, "docs", base + "/docs", "db", s.cfg.DatabaseLabel()}
	if s.admin == nil {
		attrs = append(attrs, "admin", base+"/admin")
	}
	s.log.Info("sovereign listening", attrs...)
	if missing := web.Missing(); len(missing) > 0 {
		s.log.Warn("this binary was built without its web assets: " + strings.Join(missing, ", ") +
			" answer 503 with how to build them; build with `make build` (or `make assets` before `go build`)")
	}
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ok && ip.Unmap().IsLoopback()
}

// ipRetention is --ip-retention, 7 days when unset (a configuration built
// in code rather than from flags).
func ipRetention(cfg config.Config) time.Duration {
	if cfg.Limits.IPRetention > 0 {
		return cfg.Limits.IPRetention
	}
	return 7 * 24 * time.Hour
}
