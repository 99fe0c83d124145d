package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sovereign-im/sovereign/migrations"
)

// sqliteEngine is the embedded database: one file, one writer connection.
type sqliteEngine struct {
	log *slog.Logger
	// path is the database file; syncWAL is set when the writer runs at
	// synchronous=NORMAL on behalf of FULL and the syncer makes its
	// commits durable.
	path    string
	syncWAL bool
}

func (*sqliteEngine) name() string              { return "sqlite" }
func (*sqliteEngine) migrations() fs.FS         { return migrations.SQLite }
func (*sqliteEngine) rebind(q string) string    { return q }
func (*sqliteEngine) sharedWriters() bool       { return false }
func (*sqliteEngine) forUpdate() string         { return "" }
func (*sqliteEngine) rowID() string             { return "rowid" }
func (*sqliteEngine) unindexed(c string) string { return "+" + c }

// The single writer connection is the only writer of the file: batches are
// serial and commit in seq order by construction.
func (*sqliteEngine) beginBatch(context.Context, bun.Tx) (int64, error) { return 0, nil }
func (*sqliteEngine) endBatch(context.Context, bun.Tx, int64) error     { return nil }

// AUTOINCREMENT's counter survives deletions and is read in the reader's
// snapshot, so it never names an uncommitted event.
func (*sqliteEngine) lastSeqSQL() string {
	return `SELECT seq FROM sqlite_sequence WHERE name = 'events'`
}

// The single writer numbers events itself (Tx.takeSeq); an explicit seq
// above sqlite_sequence's counter advances it, so lastSeqSQL stays right.
func (*sqliteEngine) nextSeqSQL() string { return "" }

func (e *sqliteEngine) open(ctx context.Context, opts Options) (wdb, rdb *bun.DB, err error) {
	if opts.Path == "" {
		return nil, nil, errors.New("open store: empty database path")
	}
	if opts.MustExist {
		if fi, err := os.Stat(opts.Path); err != nil || fi.Size() == 0 {
			return nil, nil, &NoDatabaseError{Path: opts.Path}
		}
	}
	if err := prepareFiles(opts.Path, opts.AllowInsecurePermissions, e.log); err != nil {
		return nil, nil, err
	}
	// FULL (the default) is kept by the syncer, not by SQLite: the writer
	// connection commits at NORMAL (the WAL frames are written, not
	// synced) and the syncer fsyncs the WAL before anyone is answered or
	// shown the batch (durable.go). NORMAL is the operator's own choice
	// and runs as SQLite's NORMAL with no syncer.
	e.path = opts.Path
	sync := opts.Synchronous
	if strings.EqualFold(sync, "FULL") {
		e.syncWAL, sync = true, "NORMAL"
	}
	wdb, err = openDB(opts.Path, writeDSNParams(sync))
	if err != nil {
		return nil, nil, fmt.Errorf("open writer connection: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := runMigrations(ctx, wdb, migrations.SQLite, true); err != nil {
		_ = wdb.Close()
		return nil, nil, err
	}
	rdb, err = openDB(opts.Path, readDSNParams())
	if err != nil {
		_ = wdb.Close()
		return nil, nil, fmt.Errorf("open read pool: %w", err)
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	return wdb, rdb, nil
}

func (*sqliteEngine) isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func (*sqliteEngine) dbBytes(context.Context, *bun.DB) int64 { return 0 }

func (e *sqliteEngine) commitSync() func() error {
	if !e.syncWAL {
		return nil
	}
	wal := e.path + "-wal"
	return func() error { return datasyncFile(wal) }
}

// syncAll syncs the WAL and the main file (a checkpoint may have written
// pages there that are not yet on disk either).
func (e *sqliteEngine) syncAll() error {
	if err := datasyncFile(e.path + "-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return datasyncFile(e.path)
}

// datasyncFile flushes a file's data to disk. It opens the file for each sync:
// SQLite may delete and recreate the -wal file (when its last connection
// closes), and Linux flushes the file's data whichever descriptor asks.
func datasyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s to sync: %w", path, err)
	}
	err = fdatasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// runMigrations applies the embedded migrations of fsys; lockTable takes
// bun's lock row around them (the caller may hold a stronger lock).
func runMigrations(ctx context.Context, db *bun.DB, fsys fs.FS, lockTable bool) error {
	ms := migrate.NewMigrations()
	if err := ms.Discover(fsys); err != nil {
		return fmt.Errorf("discover migrations: %w", err)
	}
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("init migrations: %w", err)
	}
	if lockTable {
		if err := m.Lock(ctx); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		defer func() { _ = m.Unlock(ctx) }()
	}
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// useCaseContext gives a SQLite use case a context that never ends. The
// driver watches every statement's cancellable context with a goroutine
// of its own (about eight per message sent, 4–5 % of the server's CPU
// under send load), and ending one interrupts SQLite, which rolls back the
// whole batch's transaction: a deadline could only fail every use case of
// the batch. Its statements wait for nothing remote (busy_timeout bounds a
// lock wait), so a use case still running after UseCaseTimeout is a bug,
// and the watchdog says so in the log.
func (e *sqliteEngine) useCaseContext(parent context.Context) (context.Context, context.CancelFunc) {
	watchdog := time.AfterFunc(UseCaseTimeout, func() {
		e.log.Error("write use case still running: the writer waits for it", "after", UseCaseTimeout)
	})
	return context.WithoutCancel(parent), func() { watchdog.Stop() }
}
