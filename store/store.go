// Package store owns every query and transaction of Sovereign. All writes go
// through one writer goroutine that commits them in batches (group commit):
// one fsync serves many use cases while each use case keeps its own
// all-or-nothing semantics through a savepoint. Reads use a separate pool of
// read-only connections, so they never wait for the writer.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/sovereign-im/sovereign/models"
)

// Options configures Open.
type Options struct {
	// Database selects the engine: empty (or anything but a PostgreSQL
	// URL) is the SQLite file at Path; postgres://… (or postgresql://…)
	// is PostgreSQL, which any number of instances may share.
	Database string
	// Path is the SQLite database file.
	Path string
	// AllowInsecurePermissions skips the refusal of a database file or
	// directory that group or others can read. It is logged loudly.
	AllowInsecurePermissions bool
	// Synchronous is the SQLite synchronous mode: "FULL" (default) or "NORMAL".
	Synchronous string
	// MaxBatch bounds how many use cases the writer commits together.
	MaxBatch int
	// ReadConns bounds the read pool; 0 picks a default from GOMAXPROCS.
	ReadConns int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
	// Publisher is told about committed events (the real-time hub); nil
	// means nobody listens.
	Publisher models.Publisher
	// KeyPackagesLow runs inside the claim use case (same transaction) for
	// each device whose normal key packages for a suite that claim took
	// below the low-water mark; nil means NotifyKeyPackagesLow (a notice in
	// the device's feed). Returning an error fails the claim.
	KeyPackagesLow func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error
	// GroupQuotaBytes bounds the stored message bytes of one group; 0
	// means the threat model's default (1 GiB).
	GroupQuotaBytes int64
	// RequirePadding refuses application messages whose ciphertext is not
	// padded to one of the SDKs' buckets (mls.IsPaddedLength).
	RequirePadding bool
	// PushOnline turns Web Push queueing on: it reports whether a device
	// has an open stream (such devices get no push). Nil means push is off.
	PushOnline func(deviceID string) bool
	// UserQuotaBytes bounds the attachment bytes one user stores in all
	// groups together; 0 means DefaultUserQuotaBytes.
	UserQuotaBytes int64
	// MustExist refuses to create the database file: commands other than
	// serve open the server's database and must never make a new one.
	MustExist bool
}

// Store is Sovereign's persistence: one writer connection driven by the
// group-commit writer, and a pool of read-only connections.
type Store struct {
	path string
	eng  engine
	// cluster listens to the other instances (PostgreSQL only).
	cluster *cluster
	// presence records this instance's streaming devices for the others
	// (PostgreSQL with push on).
	presence *presence
	// leader is the election of StartLeader (nil until started).
	leaderMu sync.Mutex
	leader   *Leader
	wdb      *bun.DB
	rdb      *bun.DB
	writer   *writer
	now      func() time.Time
	log      *slog.Logger
	pub      models.Publisher
	quota    int64
	// userQuota bounds one user's attachment bytes.
	userQuota int64
	// caps are the per-user counts (groups, devices) in force; see
	// SetUserCaps.
	caps userCaps
	// requirePadding: see Options.RequirePadding.
	requirePadding bool

	keyPackagesLow func(ctx context.Context, tx *Tx, low models.KeyPackageLow) error

	// readStmts are the hot read statements, prepared on the read pool.
	readStmts *readStmts
	// auth caches resolved sessions; the writer invalidates it.
	auth *authCache

	// durable is the durable watermark: the highest event seq on disk
	// (used only when the writer has a syncer; see readCap).
	durable atomic.Int64

	secretsMu sync.Mutex
	secrets   map[string][]byte // ServerSecret's cache
}

// Open creates the data directory (0700) and database file (0600) when they
// are missing, refuses insecure permissions, applies the embedded migrations
// and starts the writer.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	eng := newEngine(opts, opts.Logger)
	if testEngineHook != nil {
		testEngineHook(eng)
	}
	wdb, rdb, err := eng.open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if opts.GroupQuotaBytes <= 0 {
		opts.GroupQuotaBytes = DefaultGroupQuotaBytes
	}
	if opts.UserQuotaBytes <= 0 {
		opts.UserQuotaBytes = DefaultUserQuotaBytes
	}
	if opts.KeyPackagesLow == nil {
		opts.KeyPackagesLow = NotifyKeyPackagesLow
	}
	s := &Store{path: opts.Path, eng: eng, wdb: wdb, rdb: rdb, now: opts.Now, log: opts.Logger, pub: opts.Publisher,
		quota: opts.GroupQuotaBytes, userQuota: opts.UserQuotaBytes, keyPackagesLow: opts.KeyPackagesLow, auth: newAuthCache(),
		requirePadding: opts.RequirePadding}
	if eng.name() != "sqlite" {
		s.path = ""
	}
	if s.pub == nil {
		s.pub = noPublisher{}
	}
	stmts, err := prepareHot(ctx, wdb, eng)
	if err != nil {
		_ = rdb.Close()
		_ = wdb.Close()
		return nil, err
	}
	if s.readStmts, err = prepareReads(ctx, rdb, eng); err != nil {
		closeStmts(stmts)
		_ = rdb.Close()
		_ = wdb.Close()
		return nil, err
	}
	var cl *cluster
	if eng.sharedWriters() {
		cl = newCluster()
	}
	durableSync := eng.commitSync()
	if durableSync != nil {
		// What the files hold now may still be only in the page cache (a
		// process that crashed before its sync): make it durable before
		// any of it is served.
		if err := eng.syncAll(); err != nil {
			closeStmts(stmts)
			s.readStmts.close()
			_ = rdb.Close()
			_ = wdb.Close()
			return nil, fmt.Errorf("sync database at open: %w", err)
		}
		var seq sql.NullInt64
		if err := wdb.NewRaw(eng.lastSeqSQL()).Scan(ctx, &seq); err != nil && !errors.Is(err, sql.ErrNoRows) {
			closeStmts(stmts)
			s.readStmts.close()
			_ = rdb.Close()
			_ = wdb.Close()
			return nil, fmt.Errorf("read last seq: %w", err)
		}
		s.durable.Store(seq.Int64)
	}
	s.writer = newWriter(wdb, eng, cl, opts.MaxBatch, opts.Now, opts.Logger, s.pub, stmts, s.auth, durableSync, &s.durable)
	if opts.PushOnline != nil {
		s.writer.push = &pushState{online: opts.PushOnline, subs: make(map[string]struct{})}
		if err := s.loadPushSubscriptions(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if pe, ok := eng.(*postgresEngine); ok {
		s.startCluster(pe, cl)
		if s.writer.push != nil {
			if err := s.startPresence(ctx, cl); err != nil {
				_ = s.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

// testEngineHook, when set by a test, adjusts the engine before it opens.
var testEngineHook func(engine)

func writeDSNParams(synchronous string) url.Values {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous("+synchronous+")")
	v.Add("_txlock", "immediate")
	return v
}

func readDSNParams() url.Values {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "query_only(1)")
	v.Add("_txlock", "deferred")
	return v
}

func openDB(path string, params url.Values) (*bun.DB, error) {
	dsn := "file:" + uriPath(path) + "?" + params.Encode()
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db := bun.NewDB(sqldb, sqlitedialect.New())
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// uriPath escapes the characters that end or change the path part of an
// SQLite URI filename ('?' starts the query, '#' the fragment, '%' an
// escape). Without it a data directory containing '#' silently opens
// another file, without the connection's pragmas.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// prepareFiles makes the directory (0700) and the file (0600) and refuses
// existing ones that others can read.
func prepareFiles(path string, allowInsecure bool, log *slog.Logger) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	if err := checkMode(dir, allowInsecure, log); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file %s: %w", path, err)
	}
	_ = f.Close()
	return checkMode(path, allowInsecure, log)
}

// NoDatabaseError reports that Options.MustExist found no database.
type NoDatabaseError struct{ Path string }

func (e *NoDatabaseError) Error() string { return "no database at " + e.Path }

// InsecurePermissionsError reports a database file or directory that group
// or others can access.
type InsecurePermissionsError struct {
	Path string
	Mode fs.FileMode
}

func (e *InsecurePermissionsError) Error() string {
	want := "600"
	if e.Mode.IsDir() {
		want = "700"
	}
	return fmt.Sprintf("%s has mode %04o: group or others can access it; fix with `chmod %s %s` (or start with --allow-insecure-permissions)",
		e.Path, e.Mode.Perm(), want, e.Path)
}

func checkMode(path string, allowInsecure bool, log *slog.Logger) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	perr := &InsecurePermissionsError{Path: path, Mode: fi.Mode()}
	if allowInsecure {
		log.Warn("INSECURE: database path is accessible to group or others; continuing because --allow-insecure-permissions is set",
			"path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		return nil
	}
	return perr
}

// Path returns the SQLite database file path ("" on PostgreSQL).
func (s *Store) Path() string { return s.path }

// Now returns the store's clock reading.
func (s *Store) Now() time.Time { return s.now() }

// Close stops the writer after it has committed what it holds, then closes
// both connection pools.
func (s *Store) Close() error {
	if s.presence != nil {
		s.presence.close()
	}
	s.stopLeader()
	s.stopCluster()
	s.writer.close()
	closeStmts(s.writer.stmts)
	s.readStmts.close()
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// Ready reports whether the database answers and every embedded migration is
// applied.
func (s *Store) Ready(ctx context.Context) error {
	if s.writer.sync != nil {
		if err := s.writer.sync.err(); err != nil {
			return err
		}
	}
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(s.eng.migrations()); err != nil {
		return fmt.Errorf("discover migrations: %w", err)
	}
	var applied int
	if err := s.rdb.NewSelect().Table("bun_migrations").ColumnExpr("count(*)").Scan(ctx, &applied); err != nil {
		return fmt.Errorf("count applied migrations: %w", err)
	}
	if want := len(ms.Sorted()); applied < want {
		return fmt.Errorf("%d of %d migrations applied", applied, want)
	}
	return nil
}

// ReadDB returns the read-only pool, for the store's own queries.
func (s *Store) ReadDB() bun.IDB { return s.rdb }

// Publisher returns the hub that use cases announce committed events to.
// Use cases inside the store publish through it from tx.AfterCommit.
func (s *Store) Publisher() models.Publisher { return s.pub }

// noPublisher drops announcements when no hub is attached.
type noPublisher struct{}

func (noPublisher) Publish(*models.Event, []string) {}
func (noPublisher) SessionsEnded([]string)          {}
