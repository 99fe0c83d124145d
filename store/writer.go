package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/sovereign-im/sovereign/models"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("store closed")

// Tx is the transaction a write use case runs in. It is a savepoint inside
// the writer's batch transaction: when the use case returns an error, its
// changes alone are rolled back.
type Tx struct {
	bun.Tx
	now         time.Time
	afterCommit []func()
	w           *writer
	keepsAuth   bool
	// pushes are the events published by the use case, queued for push
	// before its savepoint is released (push on only).
	pushes []pendingPush
	// pushGone are devices whose subscription this use case deleted (the
	// in-memory set changes only after commit).
	pushGone []string
	// chain is the chain head this use case knows (chain.go).
	chain chainHint
}

// Now is the clock reading taken for this use case.
func (tx *Tx) Now() time.Time { return tx.now }

// AfterCommit registers f to run once the batch holding this use case is
// durably committed; it never runs when the use case or the commit fails.
// Use it to publish events: subscribers must see only what is on disk.
func (tx *Tx) AfterCommit(f func()) { tx.afterCommit = append(tx.afterCommit, f) }

// KeepsAuth declares that this use case changes nothing authentication
// decides on: no session, device or user is created, revoked, expired,
// disabled or has its role changed (a last-seen time is fine: TouchSession
// updates the cached one). Without it, committing the use case invalidates
// every cached authentication, which is always safe; declare it only on hot
// use cases (sending, acknowledging, touching a session).
func (tx *Tx) KeepsAuth() { tx.keepsAuth = true }

// UseCaseTimeout bounds one write use case, which is meant to take
// milliseconds. Use cases run under a context detached from their caller's
// cancellation (see writer.run); on PostgreSQL it ends at this deadline, on
// SQLite a use case still running then is logged (engine.useCaseContext).
var UseCaseTimeout = 30 * time.Second

// WriteFunc is one write use case. It must be short: it runs on the single
// writer goroutine while other use cases wait.
type WriteFunc func(ctx context.Context, tx *Tx) error

// Write runs fn in the single writer and returns once its batch is durably
// committed (or fn failed). Many concurrent Writes share one commit.
func (s *Store) Write(ctx context.Context, fn WriteFunc) error {
	r := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writer.reqs <- r:
	case <-s.writer.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once accepted, the writer always answers; wait for the durable result
	// even if ctx ends, so the caller never reports a write it cannot know.
	return <-r.done
}

type writeRequest struct {
	ctx  context.Context
	fn   WriteFunc
	done chan error
	tx   *Tx
	err  error
	// ran and keepsAuth record whether the use case ran and declared
	// Tx.KeepsAuth (kept even when it failed and tx was dropped).
	ran, keepsAuth bool
}

type writer struct {
	pub         models.Publisher
	db          *bun.DB
	eng         engine
	maxBatch    int
	log         *slog.Logger
	now         func() time.Time
	reqs        chan *writeRequest
	quit        chan struct{}
	stopped     chan struct{}
	batches     atomic.Uint64
	useCases    atomic.Uint64
	runNanos    atomic.Int64 // time spent running use cases
	commitNanos atomic.Int64 // time spent in COMMIT (page writes and fsync)

	// stmts are the hot statements prepared on the writer connection.
	stmts map[string]*sql.Stmt
	// batchStmts are stmts bound to the current batch's transaction (by
	// the first use of each in the batch; database/sql closes them with
	// the transaction). Writer goroutine only; emptied as a batch begins.
	batchStmts map[string]*sql.Stmt
	// auth is invalidated after each batch holding a use case that did not
	// declare KeepsAuth.
	auth *authCache

	// Writer-path state, touched only by the writer goroutine.
	lastTS   int64 // last event server_ts handed out (Unix µs)
	tsLoaded bool  // lastTS was initialised from the database
	// lastSeq is the last event seq handed out (Tx.takeSeq), when the
	// engine lets the writer count (nextSeqSQL is ""); seqLoaded says it
	// was read from the database since the last failed batch.
	lastSeq   int64
	seqLoaded bool
	// maxSeq is the highest event seq the current batch assigned.
	maxSeq int64
	// With several instances (engine.sharedWriters): what this batch
	// announces to the others, the event head after this instance's
	// previous batch, and this instance's view of the others.
	note      batchNote
	knownHead int64
	cluster   *cluster
	// members caches each group's active member devices under the group's
	// members_version (see groupMembers); cleared when a use case or a
	// batch fails, since what it read may have been rolled back.
	members map[string]memberList
	// push is nil when push is off.
	push *pushState
	// sync is nil when a COMMIT that returned is durable (or durability
	// is off); otherwise it answers each committed batch once it is on
	// disk (see durable.go).
	sync *syncer
}

// memberList is a group's active member devices at one members_version.
// The slice is shared with every publish: never modified.
type memberList struct {
	version int64
	devices []string
}

// maxCachedGroups bounds the member-list cache; past it, it starts over.
const maxCachedGroups = 4096

// WriterStats counts the writer's work since start.
type WriterStats struct {
	Batches  uint64        // committed transactions
	UseCases uint64        // use cases they held
	Running  time.Duration // time spent running use cases (BEGIN to the last RELEASE)
	Commit   time.Duration // time spent in COMMIT (page writes, and the fsync when SQLite syncs itself)
	// Syncs and Syncing count the syncer's fsyncs of the WAL and the time
	// they took, beside the writer (zero without a syncer: see durable.go).
	Syncs   uint64
	Syncing time.Duration
}

// WriterStats reports how many batches and use cases the writer committed.
func (s *Store) WriterStats() WriterStats {
	w := s.writer
	st := WriterStats{Batches: w.batches.Load(), UseCases: w.useCases.Load(),
		Running: time.Duration(w.runNanos.Load()), Commit: time.Duration(w.commitNanos.Load())}
	if w.sync != nil {
		st.Syncs, st.Syncing = w.sync.syncs.Load(), time.Duration(w.sync.syncNanos.Load())
	}
	return st
}

func newWriter(db *bun.DB, eng engine, cl *cluster, maxBatch int, now func() time.Time, log *slog.Logger, pub models.Publisher, stmts map[string]*sql.Stmt, auth *authCache,
	durableSync func() error, watermark *atomic.Int64) *writer {
	w := &writer{
		stmts:      stmts,
		batchStmts: map[string]*sql.Stmt{},
		auth:       auth,
		pub:        pub,
		db:         db,
		eng:        eng,
		cluster:    cl,
		maxBatch:   maxBatch,
		log:        log,
		now:        now,
		reqs:       make(chan *writeRequest), // unbuffered: a send succeeds only when the loop takes it
		quit:       make(chan struct{}),
		stopped:    make(chan struct{}),
		members:    make(map[string]memberList),
	}
	if durableSync != nil {
		w.sync = newSyncer(w, durableSync, watermark)
	}
	go w.loop()
	return w
}

func (w *writer) close() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.stopped
}

func (w *writer) loop() {
	defer func() {
		// Answer the batches still waiting for their sync, then stop.
		if w.sync != nil {
			w.sync.close()
		}
		close(w.stopped)
	}()
	batch := make([]*writeRequest, 0, w.maxBatch)
	for {
		select {
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		case <-w.quit:
			// Commit whatever callers are already waiting to hand over.
			for {
				select {
				case r := <-w.reqs:
					w.commit([]*writeRequest{r})
					continue
				default:
				}
				return
			}
		}
	drain:
		for len(batch) < w.maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		w.commit(batch)
	}
}

// commit runs the batch in one transaction, each use case in a savepoint,
// commits once, then answers every caller and runs after-commit hooks.
func (w *writer) commit(batch []*writeRequest) {
	ctx := context.Background()
	if w.sync != nil {
		if err := w.sync.err(); err != nil {
			w.finish(batch, err)
			return
		}
	}
	start := time.Now()
	btx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		w.finish(batch, fmt.Errorf("begin batch: %w", err))
		return
	}
	w.maxSeq = 0
	w.note.reset()
	clear(w.batchStmts)
	if w.eng.sharedWriters() {
		// Another instance may have written since the last batch.
		w.tsLoaded = false
	}
	head, err := w.eng.beginBatch(ctx, btx)
	if err != nil {
		w.abort(batch, btx, err)
		return
	}
	remoteGap := w.eng.sharedWriters() && head > w.knownHead
	for i := 0; ; i++ {
		if i == len(batch) {
			r, ok := w.more(len(batch))
			if !ok {
				break
			}
			batch = append(batch, r)
		}
		if err := w.run(ctx, btx, batch[i]); err != nil {
			w.abort(batch, btx, err)
			return
		}
	}
	if err := w.eng.endBatch(ctx, btx, w.maxSeq); err != nil {
		w.abort(batch, btx, err)
		return
	}
	if w.sync != nil {
		// The batch's head, however its events were inserted: what the
		// watermark reaches once the batch is durable.
		var head sql.NullInt64
		err := btx.Tx.StmtContext(ctx, w.stmts[w.eng.lastSeqSQL()]).QueryRowContext(ctx).Scan(&head)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			w.abort(batch, btx, fmt.Errorf("read batch head: %w", err))
			return
		}
		w.maxSeq = max(w.maxSeq, head.Int64)
	}
	ran := time.Now()
	w.runNanos.Add(int64(ran.Sub(start)))
	err = btx.Commit()
	w.commitNanos.Add(int64(time.Since(ran)))
	// Before any caller is answered: once a revocation is acknowledged, no
	// cached authentication from before it may be used.
	authChanged := w.invalidateAuth(batch)
	if err != nil {
		w.finish(batch, fmt.Errorf("commit batch: %w", err))
		return
	}
	if w.eng.sharedWriters() {
		w.knownHead = max(head, w.maxSeq, w.knownHead)
		if remoteGap {
			// Another instance committed events since our previous batch:
			// streams read the store (in order) before taking ours.
			if l, ok := w.pub.(lagger); ok {
				l.Lag(nil)
			}
		}
		w.announce(ctx, authChanged)
	}
	w.batches.Add(1)
	w.useCases.Add(uint64(len(batch)))
	if w.sync != nil {
		// Answered by the syncer once durable; meanwhile the next batch runs.
		w.sync.enqueue(batch, w.maxSeq)
		return
	}
	w.answer(batch)
}

// answer runs the after-commit hooks of a durably committed batch and
// answers its callers, in batch order.
func (w *writer) answer(batch []*writeRequest) {
	for _, r := range batch {
		if r.err == nil && r.tx != nil {
			for _, f := range r.tx.afterCommit {
				f()
			}
		}
		r.done <- r.err
	}
}

// more returns one more request for the open batch: with a syncer, while
// the previous batch's sync is in flight, the writer keeps taking requests
// into this transaction, so running them overlaps the fsync and the commit
// that follows serves them all (batches stay as large as without the
// pipeline). Without one (COMMIT is durable or durability is off) the
// batch is what was waiting when it started.
func (w *writer) more(n int) (*writeRequest, bool) {
	if w.sync == nil || n >= w.maxBatch {
		return nil, false
	}
	select {
	case r := <-w.reqs:
		return r, true
	default:
	}
	for w.sync.busy() {
		select {
		case r := <-w.reqs:
			return r, true
		case <-w.sync.idle:
		case <-w.quit:
			return nil, false
		}
	}
	return nil, false
}

// run runs one use case of the batch in its savepoint. An error is fatal
// to the whole batch (the transaction is unusable); the use case's own
// failure is recorded in r.err and rolled back to its savepoint.
func (w *writer) run(ctx context.Context, btx bun.Tx, r *writeRequest) error {
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return nil
	}
	if err := w.exec(ctx, btx, qSavepoint); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	r.tx = &Tx{Tx: btx, now: w.now(), w: w}
	seqMark, seqWasLoaded := w.lastSeq, w.seqLoaded
	// The use case runs detached from its request: a client that goes
	// away mid-statement must not make the driver interrupt SQLite,
	// which rolls back the whole batch transaction (every other use
	// case of the batch would fail). The engine bounds it instead.
	uctx, cancel := w.eng.useCaseContext(r.ctx)
	r.err = runUseCase(uctx, r.fn, r.tx)
	if r.err == nil && len(r.tx.pushes) > 0 {
		r.err = w.enqueuePushes(uctx, r.tx)
	}
	cancel()
	r.ran, r.keepsAuth = true, r.tx.keepsAuth
	if r.err != nil {
		r.tx = nil
		// Cached member lists may have been read inside the use case.
		clear(w.members)
		// Its events are rolled back: their seqs go to the next use case.
		w.lastSeq, w.seqLoaded = seqMark, seqWasLoaded
		if err := w.exec(ctx, btx, qRollbackSavepoint); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if err := w.exec(ctx, btx, qReleaseSavepoint); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// invalidateAuth bumps the authentication cache's generation unless every
// use case of the batch that ran declared KeepsAuth.
func (w *writer) invalidateAuth(batch []*writeRequest) bool {
	for _, r := range batch {
		if r.ran && !r.keepsAuth {
			if w.auth != nil {
				w.auth.invalidate()
			}
			return true
		}
	}
	return false
}

// exec runs one of the writer's prepared statements in the batch.
func (w *writer) exec(ctx context.Context, btx bun.Tx, q string) error {
	_, err := w.batchStmt(ctx, btx, q).ExecContext(ctx)
	return err
}

// batchStmt returns the prepared statement q bound to the batch's
// transaction btx, binding it on its first use in the batch: a
// transaction-bound statement costs an allocation and a registration
// with the transaction, which ten statements per message sent made
// measurable.
func (w *writer) batchStmt(ctx context.Context, btx bun.Tx, q string) *sql.Stmt {
	if st, ok := w.batchStmts[q]; ok {
		return st
	}
	st := btx.Tx.StmtContext(ctx, w.stmts[q])
	w.batchStmts[q] = st
	return st
}

// abort rolls the whole batch back and fails every use case in it.
func (w *writer) abort(batch []*writeRequest, btx bun.Tx, err error) {
	_ = btx.Rollback()
	w.finish(batch, err)
}

// finish fails every use case of a batch that could not be committed.
func (w *writer) finish(batch []*writeRequest, err error) {
	clear(w.members)
	// The batch's events are gone (or, if the COMMIT failed late, may be
	// there): count on from what the database holds.
	w.seqLoaded = false
	w.log.Error("write batch failed", "use_cases", len(batch), "err", err)
	for _, r := range batch {
		r.done <- err
	}
}

func runUseCase(ctx context.Context, fn WriteFunc, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write use case panicked: %v", p)
		}
	}()
	return fn(ctx, tx)
}
