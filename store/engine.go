package store

import (
	"context"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
)

// engine is the one place where SQLite and PostgreSQL differ. Every use
// case is written once against bun and the SQL both engines accept (with
// SQLite's ? and ?N placeholders, which rebind adapts); what cannot be
// written once lives behind this interface:
//
//   - connecting: SQLite's file with its pragmas, or a PostgreSQL URL;
//   - the migrations directory and how concurrent starts are kept from
//     applying them twice (bun's lock table on one file; a session
//     advisory lock on PostgreSQL, where several instances share a database);
//   - how a write batch serialises. SQLite has one writer connection per
//     file: the group-commit writer is the only writer, so a use case's
//     reads and checks (the commit-per-epoch rule, quotas) cannot race.
//     On PostgreSQL several instances each run a writer; every batch
//     first takes one transaction-level advisory lock (batchLockKey), held
//     to COMMIT, so batches of all instances run one after another exactly
//     as on SQLite, and the epoch check additionally reads the group row
//     FOR UPDATE;
//   - how event sequence numbers become visible in order. SQLite's single
//     writer commits in seq order by construction. On PostgreSQL a
//     sequence hands out values that may commit out of order; since seq is
//     only ever taken under the batch lock, and PostgreSQL makes a commit
//     visible before it releases the transaction's locks, a transaction
//     with a higher seq starts only after every lower seq is committed and
//     visible: a reader that saw seq N can never later find an N' < N
//     (TestPostgresFeedNeverSkips proves it, and fails with the lock off).
type engine interface {
	// name is "sqlite" or "postgres".
	name() string
	// open connects the writer pool (one connection: the group-commit
	// writer's) and the read pool, after migrating the database.
	open(ctx context.Context, opts Options) (wdb, rdb *bun.DB, err error)
	// migrations is the engine's migrations directory.
	migrations() fs.FS
	// rebind rewrites a statement written with ? and ?N placeholders for
	// the driver (prepared statements bypass bun's own formatting).
	rebind(q string) string
	// sharedWriters is true when other processes may write the same
	// database: per-process caches of the writer (the last event
	// timestamp) must then be re-read in each batch.
	sharedWriters() bool
	// beginBatch runs first in every write batch's transaction; it returns
	// the event head when other instances may write (0 otherwise).
	beginBatch(ctx context.Context, tx bun.Tx) (head int64, err error)
	// endBatch runs last before COMMIT; maxSeq is the highest event seq
	// the batch assigned (0 when none).
	endBatch(ctx context.Context, tx bun.Tx, maxSeq int64) error
	// forUpdate is appended to a SELECT of a row the use case will update
	// on the strength of what it read (the epoch check).
	forUpdate() string
	// rowID names a row's physical identity, for chunked deletes and as
	// the last tie-break of an order (SQLite's rowid, PostgreSQL's ctid).
	rowID() string
	// unindexed wraps a column so the planner does not pick its index
	// (SQLite's unary +; PostgreSQL plans by statistics and needs none).
	unindexed(col string) string
	// lastSeqSQL reads the highest seq ever assigned to a committed event.
	lastSeqSQL() string
	// nextSeqSQL hands out the next event seq inside a batch (PostgreSQL:
	// the events identity sequence, taken under the batch lock), or is ""
	// when the engine's single writer numbers events itself: it reads
	// lastSeqSQL once and counts on (Tx.takeSeq), so the seq, and with it
	// the chain hash, is known before the event's INSERT.
	nextSeqSQL() string
	// isUniqueViolation reports a UNIQUE or PRIMARY KEY failure.
	isUniqueViolation(err error) bool
	// dbBytes is the database's size on disk.
	dbBytes(ctx context.Context, rdb *bun.DB) int64
	// commitSync returns what makes every batch committed so far durable,
	// for engines whose COMMIT returns before the data is on disk (SQLite
	// at the default FULL runs its writer at synchronous=NORMAL and syncs
	// the WAL itself, off the writer: see durable.go); nil when a COMMIT
	// that returned is already durable (PostgreSQL) or the operator chose
	// not to sync (--sqlite-synchronous NORMAL).
	commitSync() func() error
	// syncAll makes the database's files durable as they are (at open,
	// before serving what a crashed process left in the page cache); only
	// called when commitSync is not nil.
	syncAll() error
	// useCaseContext is the context a write use case runs under: detached
	// from its caller's cancellation (see writer.run), and bounded by
	// UseCaseTimeout where ending a statement fails only its use case.
	useCaseContext(parent context.Context) (context.Context, context.CancelFunc)
}

// IsPostgres reports whether a --database value selects PostgreSQL.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

func newEngine(opts Options, log *slog.Logger) engine {
	if IsPostgres(opts.Database) {
		return &postgresEngine{url: opts.Database, log: log}
	}
	return &sqliteEngine{log: log}
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.eng.name() }

// rebindDollar rewrites SQLite-style placeholders (? in order, ?N by
// number) to PostgreSQL's $N, leaving quoted strings and identifiers alone.
func rebindDollar(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		if quote != 0 {
			b.WriteByte(c)
			if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '\'', '"':
			quote = c
			b.WriteByte(c)
		case '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
				i = j - 1
			} else {
				n++
				b.WriteString(strconv.Itoa(n))
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY failure of either
// engine (use cases call it without knowing which one they run on).
func isUniqueViolation(err error) bool {
	return err != nil && ((*sqliteEngine)(nil).isUniqueViolation(err) || (*postgresEngine)(nil).isUniqueViolation(err))
}
