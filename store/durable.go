package store

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Pipelined group commit. On an engine whose COMMIT is not durable by
// itself (SQLite in WAL mode with the writer connection at
// synchronous=NORMAL, which is how the default --sqlite-synchronous FULL
// runs), the writer hands each committed batch to the syncer and goes on
// with the next batch while the syncer makes the log durable (one
// fdatasync of the WAL for every batch committed since the last one). Only
// then, in commit order, does a batch count as done: the durable watermark
// moves up to its highest event seq, its after-commit hooks run (the
// real-time hub's Publish, the push worker's wake-up) and its callers get
// their answers. So batch N+1 runs while batch N's fsync is in flight, and
// nothing a power loss could take back is ever exposed:
//
//   - a caller is answered only after an fsync that started after its
//     batch's COMMIT returned;
//   - readers of events (Feed, GroupHistory) stop at the watermark
//     (Store.readCap), so a committed-but-not-synced event is in no
//     stream, catch-up, long-poll or history page;
//   - a use case of a later batch may read an earlier batch's rows before
//     they are durable, but its own answer waits for its own (later) sync,
//     which covers the earlier batch: the WAL is one file, written in
//     order.
//
// See docs/durability.md for the hazards (checkpoints, WAL restarts) and
// why they keep this promise.

// ErrNotDurable wraps the error of a failed sync. After it the store
// refuses every write: the kernel may have dropped the dirty pages, so
// retrying could acknowledge data that is not on disk.
var ErrNotDurable = errors.New("store: the write-ahead log could not be made durable")

// committedBatch is a batch the writer committed that is not yet durable.
type committedBatch struct {
	reqs   []*writeRequest
	maxSeq int64
}

// syncer makes committed batches durable, off the writer goroutine.
type syncer struct {
	w    *writer
	sync func() error
	// watermark is the highest event seq that is durable.
	watermark *atomic.Int64
	// syncs and syncNanos count the syncs and the time spent in them.
	syncs     atomic.Uint64
	syncNanos atomic.Int64
	// hook, when a test sets it, runs before each sync; an error fails
	// the sync as an fsync error would.
	hook atomic.Pointer[func() error]

	mu      sync.Mutex
	queue   []committedBatch
	syncing bool // a sync (and the answers after it) is under way
	closing bool
	failed  error
	wake    chan struct{}
	// idle is signalled when a round ends with nothing queued: the writer
	// then commits the batch it kept open meanwhile (writer.more).
	idle chan struct{}
	done chan struct{}
}

// busy reports whether a batch is queued or being synced.
func (s *syncer) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncing || len(s.queue) > 0
}

func newSyncer(w *writer, sync func() error, watermark *atomic.Int64) *syncer {
	s := &syncer{w: w, sync: sync, watermark: watermark, wake: make(chan struct{}, 1), idle: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

// err is the sync failure that stopped the store (nil while healthy).
func (s *syncer) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// enqueue hands over a committed batch. The writer reuses its batch slice,
// so the requests are copied.
func (s *syncer) enqueue(reqs []*writeRequest, maxSeq int64) {
	b := committedBatch{reqs: append([]*writeRequest(nil), reqs...), maxSeq: maxSeq}
	s.mu.Lock()
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close syncs and answers whatever is queued, then stops the syncer.
func (s *syncer) close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
}

func (s *syncer) loop() {
	defer close(s.done)
	for {
		<-s.wake
		for {
			s.mu.Lock()
			queue, closing, failed := s.queue, s.closing, s.failed
			s.queue = nil
			s.syncing = len(queue) > 0
			s.mu.Unlock()
			if len(queue) == 0 {
				select {
				case s.idle <- struct{}{}:
				default:
				}
				if closing {
					return
				}
				break
			}
			// Every batch taken here had its COMMIT return before this
			// sync starts, so this one sync covers all of them.
			err := failed
			if err == nil {
				err = s.syncOnce()
				if err != nil {
					err = fmt.Errorf("%w: %w", ErrNotDurable, err)
					s.mu.Lock()
					s.failed = err
					s.mu.Unlock()
					s.w.log.Error("sync of the write-ahead log failed: refusing every write from now on", "err", err)
				}
			}
			for _, b := range queue {
				if err != nil {
					for _, r := range b.reqs {
						r.done <- err
					}
					continue
				}
				if b.maxSeq > s.watermark.Load() {
					s.watermark.Store(b.maxSeq)
				}
				s.w.answer(b.reqs)
			}
		}
	}
}

func (s *syncer) syncOnce() error {
	start := time.Now()
	defer func() {
		s.syncs.Add(1)
		s.syncNanos.Add(int64(time.Since(start)))
	}()
	if h := s.hook.Load(); h != nil {
		if err := (*h)(); err != nil {
			return err
		}
	}
	return s.sync()
}

// readCap is the highest event seq a reader may return: the durable
// watermark when commits are made durable by the syncer, no cap otherwise
// (a COMMIT that returned is durable, or the operator chose NORMAL).
func (s *Store) readCap() int64 {
	if s.writer.sync == nil {
		return math.MaxInt64
	}
	return s.durable.Load()
}

// DurableSeq returns the highest event seq that readers may see: every
// event at or below it is on disk (math.MaxInt64 when there is no
// watermark: every committed event is durable, or durability is off).
func (s *Store) DurableSeq() int64 { return s.readCap() }
