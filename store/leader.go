package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaderLockKey is the session-level advisory lock whose holder is the
// instance that runs the once-per-cluster jobs (the periodic cleanup).
const leaderLockKey int64 = 0x736f76_0003

// Leader tells whether this instance runs the jobs that must run once
// across all instances sharing a database, not once per instance: the
// periodic cleanup. On SQLite (one process) it is always the leader. On
// PostgreSQL the leader is the instance holding a session advisory lock on
// a connection of its own: the others try again every retry interval, and
// the lock goes with its holder's connection (a crashed or stopped
// instance's lock is released by PostgreSQL when its connection closes, and
// another instance takes over at its next try). The holder checks its
// connection at the same interval and stops leading as soon as it fails.
//
// Leadership is a scheduling decision, not a safety one: every job it
// gates is idempotent and runs in batches under the write lock, so two
// leaders for a moment (a network partition the holder has not noticed
// yet) only cost duplicate work.
type Leader struct {
	leading atomic.Bool
	changes atomic.Uint64
	stop    context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// IsLeader reports whether this instance leads now.
func (l *Leader) IsLeader() bool { return l != nil && l.leading.Load() }

// Takeovers counts the times this instance became the leader.
func (l *Leader) Takeovers() uint64 {
	if l == nil {
		return 0
	}
	return l.changes.Load()
}

// StartLeader starts taking part in the leader election (see Leader), with
// retry between attempts and between checks of a held lock. Close stops
// it (releasing the lock). Calling it again returns the same Leader.
func (s *Store) StartLeader(retry time.Duration) *Leader {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	if s.leader != nil {
		return s.leader
	}
	l := &Leader{done: make(chan struct{})}
	s.leader = l
	pe, ok := s.eng.(*postgresEngine)
	if !ok {
		l.leading.Store(true)
		l.changes.Add(1)
		l.stop = func() {}
		close(l.done)
		return l
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			err := s.lead(ctx, pe, l, retry)
			if l.leading.Swap(false) {
				s.log.Warn("no longer the leader instance (periodic cleanup paused here)", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	}()
	return l
}

// stopLeader ends the election (Close).
func (s *Store) stopLeader() {
	s.leaderMu.Lock()
	l := s.leader
	s.leaderMu.Unlock()
	if l != nil {
		l.once.Do(func() {
			l.stop()
			<-l.done
			l.leading.Store(false)
		})
	}
}

// lead holds one connection: it tries the lock every retry until it gets
// it, then checks the connection every retry while it leads. It returns
// when the connection fails or ctx ends (closing the connection releases
// the lock).
func (s *Store) lead(ctx context.Context, pe *postgresEngine, l *Leader, retry time.Duration) error {
	cfg, err := pe.config(false)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = "sovereign-leader"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		if l.leading.Load() {
			var held bool
			// Still connected, and still holding it (the lock is the
			// session's: a reset connection would have lost it).
			if err := conn.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
AND granted AND objsubid = 1 AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295)`, leaderLockKey).Scan(&held); err != nil {
				return err
			}
			if !held {
				return errLostLock
			}
		} else {
			var got bool
			if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey).Scan(&got); err != nil {
				return err
			}
			if got {
				l.leading.Store(true)
				l.changes.Add(1)
				s.log.Info("this instance is the leader: it runs the periodic cleanup for every instance on the database")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

type leaderError string

func (e leaderError) Error() string { return string(e) }

const errLostLock = leaderError("the leader lock is no longer held by this connection")
