package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/sovereign-im/sovereign/migrations"
)

// Advisory lock keys (one 64-bit key space per database; the values are
// arbitrary but fixed: "sov" plus a purpose).
const (
	// migrationLockKey is held (session level) while an instance applies
	// migrations, so instances starting together apply each once.
	migrationLockKey int64 = 0x736f76_0001
	// batchLockKey is held (transaction level) by every write batch from
	// its first statement to COMMIT: see engine.
	batchLockKey int64 = 0x736f76_0002
)

// postgresEngine runs the store on PostgreSQL through pgx (database/sql)
// and bun's pgdialect. Any number of instances may share the database.
type postgresEngine struct {
	url string
	log *slog.Logger
	// unsafeNoBatchLock skips the batch lock: tests only, to show what it
	// prevents.
	unsafeNoBatchLock bool
}

func (*postgresEngine) name() string              { return "postgres" }
func (*postgresEngine) migrations() fs.FS         { return migrations.Postgres }
func (*postgresEngine) rebind(q string) string    { return rebindDollar(q) }
func (*postgresEngine) sharedWriters() bool       { return true }
func (*postgresEngine) forUpdate() string         { return " FOR UPDATE" }
func (*postgresEngine) rowID() string             { return "ctid" }
func (*postgresEngine) unindexed(c string) string { return c }
func (*postgresEngine) lastSeqSQL() string        { return `SELECT seq FROM event_head WHERE id = 1` }

// Several instances insert events, each under the batch lock: the seq is
// the identity sequence's next value (what the column's DEFAULT would
// take), read before the INSERT so the chain hash goes in with the row.
func (*postgresEngine) nextSeqSQL() string {
	return `SELECT nextval(pg_get_serial_sequence('events', 'seq'))`
}

// A PostgreSQL COMMIT returns once durable (synchronous_commit on).
func (*postgresEngine) commitSync() func() error { return nil }
func (*postgresEngine) syncAll() error           { return nil }

func (e *postgresEngine) beginBatch(ctx context.Context, tx bun.Tx) (int64, error) {
	if e.unsafeNoBatchLock {
		return 0, nil
	}
	// The lock, then, in a statement of its own, the head every instance's
	// committed events have reached. Not one statement: under READ
	// COMMITTED a statement reads the snapshot taken when it started, i.e.
	// before it waited for the lock, so the head read with the lock would
	// miss the batch of the instance that held it. This batch would then
	// publish its own events to local streams without first making them
	// read that batch from the store, and a stream could move its cursor
	// past it before the notification arrived (a gap for good;
	// tests/scaleout TestPostgresTwoInstancesDeliverInOrder caught it).
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, batchLockKey); err != nil {
		return 0, fmt.Errorf("take batch lock: %w", err)
	}
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM event_head WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read event head: %w", err)
	}
	return head, nil
}

func (e *postgresEngine) endBatch(ctx context.Context, tx bun.Tx, maxSeq int64) error {
	if maxSeq == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE event_head SET seq = max(seq, ?) WHERE id = 1`, maxSeq); err != nil {
		return fmt.Errorf("advance event head: %w", err)
	}
	return nil
}

// config parses the URL. Queries run in exec mode: bun sends most of them
// with their arguments already formatted, so caching a prepared statement
// per distinct text would only fill the cache; the hot statements are
// prepared explicitly (stmts.go).
func (e *postgresEngine) config(readOnly bool) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(e.url)
	if err != nil {
		return nil, fmt.Errorf("parse --database: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "sovereign"
	cfg.RuntimeParams["timezone"] = "UTC"
	if readOnly {
		// The read pool can never write, as SQLite's query_only pool.
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	return cfg, nil
}

func (e *postgresEngine) openPool(readOnly bool) (*bun.DB, error) {
	cfg, err := e.config(readOnly)
	if err != nil {
		return nil, err
	}
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return db, nil
}

func (e *postgresEngine) open(ctx context.Context, opts Options) (wdb, rdb *bun.DB, err error) {
	if err := e.migrate(ctx); err != nil {
		return nil, nil, err
	}
	if wdb, err = e.openPool(false); err != nil {
		return nil, nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if rdb, err = e.openPool(true); err != nil {
		_ = wdb.Close()
		return nil, nil, err
	}
	rdb.SetMaxOpenConns(opts.ReadConns)
	rdb.SetMaxIdleConns(opts.ReadConns)
	return wdb, rdb, nil
}

// migrate applies the PostgreSQL migrations under a session advisory lock
// on a connection of its own: an instance starting while another migrates
// waits, then finds everything applied.
func (e *postgresEngine) migrate(ctx context.Context) error {
	db, err := e.openPool(false)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration lock connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(?)`, migrationLockKey)
	}()
	return runMigrations(ctx, db, migrations.Postgres, false)
}

func (*postgresEngine) isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (*postgresEngine) dbBytes(ctx context.Context, rdb *bun.DB) int64 {
	var n sql.NullInt64
	_ = rdb.QueryRowContext(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n.Int64
}

// DumpForTest returns every row of every table of a PostgreSQL store as
// text (bytea in hex), for tests that check what is never stored.
func (s *Store) DumpForTest(ctx context.Context) []byte {
	var tables []string
	if err := s.rdb.NewRaw(`SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`).Scan(ctx, &tables); err != nil {
		return nil
	}
	var out []byte
	for _, t := range tables {
		var rows []string
		_ = s.rdb.NewRaw(`SELECT t::text FROM `+pgx.Identifier{t}.Sanitize()+` t`).Scan(ctx, &rows)
		for _, r := range rows {
			out = append(append(out, r...), '\n')
		}
	}
	return out
}

// useCaseContext bounds a PostgreSQL use case by UseCaseTimeout: its
// statements may wait on the network or on another instance's locks, and
// a statement that ends fails its use case, which rolls back to its
// savepoint; the batch goes on.
func (*postgresEngine) useCaseContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), UseCaseTimeout)
}
