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
}

// Now is the clock reading taken for this use case.
func (tx *Tx) Now() time.Time { return tx.now }

// AfterCommit registers f to run once the batch holding this use case is
// durably committed; it never runs when the use case or the commit fails.
// Use it to publish events: subscribers must see only what is on disk.
func (tx *Tx) AfterCommit(f func()) { tx.afterCommit = append(tx.afterCommit, f) }

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
}

type writer struct {
	pub      models.Publisher
	db       *bun.DB
	maxBatch int
	log      *slog.Logger
	now      func() time.Time
	reqs     chan *writeRequest
	quit     chan struct{}
	stopped  chan struct{}
	batches  atomic.Uint64
	useCases atomic.Uint64

	// stmts are the hot statements prepared on the writer connection.
	stmts map[string]*sql.Stmt

	// Writer-path state, touched only by the writer goroutine.
	lastTS   int64 // last event server_ts handed out (Unix µs)
	tsLoaded bool  // lastTS was initialised from the database
}

// WriterStats counts the writer's work since start.
type WriterStats struct {
	Batches  uint64 // committed transactions
	UseCases uint64 // use cases they held
}

// WriterStats reports how many batches and use cases the writer committed.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{Batches: s.writer.batches.Load(), UseCases: s.writer.useCases.Load()}
}

func newWriter(db *bun.DB, maxBatch int, now func() time.Time, log *slog.Logger, pub models.Publisher, stmts map[string]*sql.Stmt) *writer {
	w := &writer{
		stmts:    stmts,
		pub:      pub,
		db:       db,
		maxBatch: maxBatch,
		log:      log,
		now:      now,
		reqs:     make(chan *writeRequest), // unbuffered: a send succeeds only when the loop takes it
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
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
	defer close(w.stopped)
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
	btx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		w.finish(batch, fmt.Errorf("begin batch: %w", err))
		return
	}
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if _, err := btx.ExecContext(ctx, "SAVEPOINT uc"); err != nil {
			_ = btx.Rollback()
			w.finish(batch, fmt.Errorf("savepoint: %w", err))
			return
		}
		r.tx = &Tx{Tx: btx, now: w.now(), w: w}
		r.err = runUseCase(r.ctx, r.fn, r.tx)
		if r.err != nil {
			r.tx = nil
			if _, err := btx.ExecContext(ctx, "ROLLBACK TO uc"); err != nil {
				_ = btx.Rollback()
				w.finish(batch, fmt.Errorf("rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := btx.ExecContext(ctx, "RELEASE uc"); err != nil {
			_ = btx.Rollback()
			w.finish(batch, fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if err := btx.Commit(); err != nil {
		w.finish(batch, fmt.Errorf("commit batch: %w", err))
		return
	}
	w.batches.Add(1)
	w.useCases.Add(uint64(len(batch)))
	for _, r := range batch {
		if r.err == nil && r.tx != nil {
			for _, f := range r.tx.afterCommit {
				f()
			}
		}
		r.done <- r.err
	}
}

// finish fails every use case of a batch that could not be committed.
func (w *writer) finish(batch []*writeRequest, err error) {
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
