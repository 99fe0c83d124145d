package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Stream presence across instances (PostgreSQL). A push goes only to a
// device with no open stream; one process knows its own streams (the hub),
// but with several instances a device may stream from A while B commits
// the event and B's worker sends the push. So each instance records, in
// stream_presence, which devices have a stream open on it, and refreshes
// its row in cluster_instances every presenceHeartbeat; a worker asks
// StreamOpenElsewhere before sending. An instance that stops deletes its
// rows; one that crashed is ignored once its heartbeat is presenceStale old
// and its rows are deleted by the next instance's heartbeat after
// presenceForget.
//
// The hub reports transitions under its lock (OnPresence); they are
// recorded in memory at once and written by one goroutine in a batch, so a
// stream's open and close never reach the database out of order and the
// message path never waits for them. Between a stream opening and its row
// being written (milliseconds) another instance may still push once.
const (
	presenceHeartbeat = 5 * time.Second
	presenceStale     = 3 * presenceHeartbeat
	presenceForget    = time.Minute
)

// presenceSource is the part of the real-time hub that reports presence.
type presenceSource interface {
	OnPresence(func(deviceID string, online bool))
}

// presence is an instance's record of its own streams' devices.
type presence struct {
	st *Store
	id string

	mu      sync.Mutex
	pending map[string]bool // device → online, not yet written
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// startPresence starts recording presence (engines with shared writers and
// a publisher that reports it).
func (s *Store) startPresence(ctx context.Context, c *cluster) error {
	src, ok := s.pub.(presenceSource)
	if !ok {
		return nil
	}
	p := &presence{st: s, id: c.id, pending: map[string]bool{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := p.heartbeat(ctx); err != nil {
		return err
	}
	s.presence = p
	src.OnPresence(p.note)
	go p.run()
	return nil
}

// note records a transition (called under the hub's lock: never blocks).
func (p *presence) note(deviceID string, online bool) {
	p.mu.Lock()
	p.pending[deviceID] = online
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *presence) run() {
	defer close(p.done)
	tick := time.NewTicker(presenceHeartbeat)
	defer tick.Stop()
	ctx := context.Background()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
			if err := p.flush(ctx); err != nil && !errors.Is(err, ErrClosed) {
				p.st.log.Warn("stream presence: write failed (retried at the next heartbeat)", "err", err)
			}
		case <-tick.C:
			err := p.heartbeat(ctx)
			if err == nil {
				err = p.flush(ctx)
			}
			if err != nil && !errors.Is(err, ErrClosed) {
				p.st.log.Warn("stream presence: heartbeat failed", "err", err)
			}
		}
	}
}

// flush writes the pending transitions in one transaction; on failure they
// stay pending (a newer transition of the same device replaces its older).
func (p *presence) flush(ctx context.Context) error {
	p.mu.Lock()
	batch := p.pending
	p.pending = map[string]bool{}
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := p.st.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		now := tx.Now().UnixMilli()
		for d, online := range batch {
			var err error
			if online {
				// A device revoked meanwhile has no row to point at:
				// INSERT … SELECT writes nothing for it.
				_, err = tx.NewRaw(`INSERT INTO stream_presence (device_id, instance_id, since)
SELECT id, ?, ? FROM devices WHERE id = ?
ON CONFLICT (device_id, instance_id) DO NOTHING`, p.id, now, d).Exec(ctx)
			} else {
				_, err = tx.NewRaw(`DELETE FROM stream_presence WHERE device_id = ? AND instance_id = ?`, d, p.id).Exec(ctx)
			}
			if err != nil {
				return fmt.Errorf("record stream presence: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		p.mu.Lock()
		for d, online := range batch {
			if _, newer := p.pending[d]; !newer {
				p.pending[d] = online
			}
		}
		p.mu.Unlock()
	}
	return err
}

// heartbeat marks this instance alive and forgets instances long gone.
func (p *presence) heartbeat(ctx context.Context) error {
	return p.st.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		now := tx.Now()
		if _, err := tx.NewRaw(`INSERT INTO cluster_instances (id, seen_at) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`, p.id, now.UnixMilli()).Exec(ctx); err != nil {
			return fmt.Errorf("instance heartbeat: %w", err)
		}
		// stream_presence rows go with their instance (ON DELETE CASCADE).
		if _, err := tx.NewRaw(`DELETE FROM cluster_instances WHERE seen_at < ?`, now.Add(-presenceForget).UnixMilli()).Exec(ctx); err != nil {
			return fmt.Errorf("forget stopped instances: %w", err)
		}
		return nil
	})
}

// close stops the goroutine and deletes this instance's rows.
func (p *presence) close() {
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.st.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		_, err := tx.NewRaw(`DELETE FROM cluster_instances WHERE id = ?`, p.id).Exec(ctx)
		return err
	}); err != nil && !errors.Is(err, ErrClosed) {
		p.st.log.Warn("stream presence: could not delete this instance's rows (they expire)", "err", err)
	}
}

// StreamOpenElsewhere reports whether the device has a stream open on
// another live instance (always false on SQLite, where one process holds
// every stream). The push worker asks it, besides its own hub, before
// sending.
func (s *Store) StreamOpenElsewhere(ctx context.Context, deviceID string) (bool, error) {
	if s.presence == nil {
		return false, nil
	}
	var open bool
	err := s.rdb.NewRaw(`SELECT EXISTS (SELECT 1 FROM stream_presence p JOIN cluster_instances i ON i.id = p.instance_id
WHERE p.device_id = ? AND p.instance_id <> ? AND i.seen_at >= ?)`,
		deviceID, s.presence.id, s.now().Add(-presenceStale).UnixMilli()).Scan(ctx, &open)
	if err != nil {
		return false, fmt.Errorf("check stream presence: %w", err)
	}
	return open, nil
}
