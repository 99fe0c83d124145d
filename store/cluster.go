package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several instances on one PostgreSQL database. Every committed batch that
// published events, ended sessions or changed what authentication decides
// is announced with NOTIFY on notifyChannel (after COMMIT: a hint, never
// the data). Each instance LISTENs on a connection of its own and
//
//   - marks the live streams of the named devices lagged, so they read the
//     store from their own cursors (the store's order has no gap, see
//     engine.go), or all streams when the list did not fit;
//   - invalidates its authentication cache, and ends the streams of ended
//     sessions at once (a session revoked on A is refused on B, and B's
//     streams close, as soon as the notification arrives);
//   - every catchUpEvery, compares the event head with the highest seq it
//     has heard of and wakes every stream when it moved unheard (a lost
//     notification delays delivery by at most that long, never loses it);
//   - after losing its connection, invalidates everything and wakes every
//     stream once it is back.
//
// A batch that finds, under the batch lock, that another instance has
// committed events since this instance's previous batch wakes every local
// stream from the store before publishing its own events: otherwise a
// reader could take this batch's events from its buffer, move its cursor
// past them, and skip the other instance's earlier ones whose notification
// had not arrived yet.
const (
	notifyChannel = "sovereign_events"
	catchUpEvery  = time.Second
	// maxNotifyDevices bounds the devices named in one notification
	// (PostgreSQL's payload limit is 8000 bytes); beyond, all streams wake.
	maxNotifyDevices = 150
)

// lagger is the part of the real-time hub the cluster wakes.
type lagger interface{ Lag(devices []string) }

// clusterNote is one notification's payload.
type clusterNote struct {
	Instance string   `json:"i"`
	MaxSeq   int64    `json:"q,omitempty"`
	Devices  []string `json:"d,omitempty"`
	All      bool     `json:"all,omitempty"`
	Sessions []string `json:"s,omitempty"`
	Auth     bool     `json:"a,omitempty"`
	// Push names devices whose push subscription changed (PushAll: too
	// many to name): the others reload them into their in-memory set.
	Push    []string `json:"p,omitempty"`
	PushAll bool     `json:"pa,omitempty"`
}

// batchNote collects what the current batch announces (writer goroutine).
type batchNote struct {
	devices  map[string]struct{}
	all      bool
	sessions []string
	push     []string
}

func (b *batchNote) reset() {
	clear(b.devices)
	b.all, b.sessions, b.push = false, b.sessions[:0], b.push[:0]
}

// notePush records a device whose push subscription this batch changed.
func (w *writer) notePush(deviceID string) {
	if w.eng.sharedWriters() {
		w.note.push = append(w.note.push, deviceID)
	}
}

// noteDevices records the devices an event of this batch reaches.
func (w *writer) noteDevices(devices []string) {
	if !w.eng.sharedWriters() || w.note.all {
		return
	}
	if w.note.devices == nil {
		w.note.devices = map[string]struct{}{}
	}
	for _, d := range devices {
		w.note.devices[d] = struct{}{}
	}
	if len(w.note.devices) > maxNotifyDevices {
		w.note.all = true
		clear(w.note.devices)
	}
}

// noteSessions records sessions this batch ended.
func (w *writer) noteSessions(ids []string) {
	if w.eng.sharedWriters() {
		w.note.sessions = append(w.note.sessions, ids...)
	}
}

// cluster is an instance's view of the others.
type cluster struct {
	id    string
	seen  atomic.Int64 // highest event seq this instance knows was delivered to its hub or woken for
	stop  context.CancelFunc
	done  chan struct{}
	wakes atomic.Uint64 // streams woken by other instances' notifications or catch-up
	// listening is closed once the first LISTEN is in place.
	listening     chan struct{}
	listeningOnce sync.Once
}

func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// announce sends the batch's notification (writer goroutine, after COMMIT).
func (w *writer) announce(ctx context.Context, authChanged bool) {
	if !w.eng.sharedWriters() || w.cluster == nil {
		return
	}
	if w.maxSeq > 0 {
		w.cluster.seen.Store(max(w.cluster.seen.Load(), w.maxSeq))
	}
	n := clusterNote{Instance: w.cluster.id, MaxSeq: w.maxSeq, All: w.note.all, Sessions: w.note.sessions, Auth: authChanged,
		Push: w.note.push}
	for d := range w.note.devices {
		n.Devices = append(n.Devices, d)
	}
	if len(n.Devices) == 0 && !n.All && len(n.Sessions) == 0 && !n.Auth && n.MaxSeq == 0 && len(n.Push) == 0 {
		return
	}
	if len(n.Push) > maxNotifyDevices {
		n.Push, n.PushAll = nil, true
	}
	if len(n.Sessions) > maxNotifyDevices {
		// Too many to name: every instance drops its caches; streams of
		// ended sessions then close at their next heartbeat check.
		n.Sessions, n.Auth = nil, true
	}
	payload, _ := json.Marshal(n)
	if _, err := w.db.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, string(payload)); err != nil {
		w.log.Warn("cluster notify failed (other instances catch up within a second)", "err", err)
	}
}

// startCluster runs the listener of a PostgreSQL store.
func newCluster() *cluster {
	return &cluster{id: newInstanceID(), done: make(chan struct{}), listening: make(chan struct{})}
}

func (s *Store) startCluster(pe *postgresEngine, c *cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	s.cluster = c
	go func() {
		defer close(c.done)
		first := true
		for ctx.Err() == nil {
			err := s.listen(ctx, pe, c, first)
			first = false
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("cluster listener lost its connection; reconnecting", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	// Serve only once other instances' notifications reach this one: a
	// push subscription saved elsewhere before the LISTEN would otherwise
	// stay unknown here until the next reconnection.
	select {
	case <-c.listening:
	case <-time.After(listenWait):
		s.log.Warn("cluster listener not connected yet; starting anyway (it keeps trying)", "after", listenWait)
	}
}

// listenWait bounds how long opening a PostgreSQL store waits for its
// first LISTEN.
const listenWait = 10 * time.Second

func (s *Store) stopCluster() {
	if s.cluster != nil {
		s.cluster.stop()
		<-s.cluster.done
	}
}

// listen holds one LISTEN connection until it fails or ctx ends.
func (s *Store) listen(ctx context.Context, pe *postgresEngine, c *cluster, first bool) error {
	cfg, err := pe.config(false)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	if first {
		// Subscriptions saved elsewhere between the store's first load of
		// them and this LISTEN reached no one: read them again.
		s.reloadPushSubscriptions(ctx, nil)
	} else {
		// Anything may have happened while we were away.
		s.auth.invalidate()
		s.lag(nil)
		s.reloadPushSubscriptions(ctx, nil)
	}
	c.listeningOnce.Do(func() { close(c.listening) })
	for {
		wctx, cancel := context.WithTimeout(ctx, catchUpEvery)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if wctx.Err() == nil {
				return err // the connection failed
			}
			if err := s.catchUp(ctx, conn, c); err != nil {
				return err
			}
			continue
		}
		var note clusterNote
		if json.Unmarshal([]byte(n.Payload), &note) != nil || note.Instance == c.id {
			continue
		}
		if note.Auth || len(note.Sessions) > 0 {
			s.auth.invalidate()
		}
		if len(note.Sessions) > 0 {
			s.pub.SessionsEnded(note.Sessions)
		}
		if note.MaxSeq > 0 {
			c.seen.Store(max(c.seen.Load(), note.MaxSeq))
		}
		switch {
		case note.PushAll:
			s.reloadPushSubscriptions(ctx, nil)
		case len(note.Push) > 0:
			s.reloadPushSubscriptions(ctx, note.Push)
		}
		switch {
		case note.All:
			s.lag(nil)
		case len(note.Devices) > 0:
			s.lag(note.Devices)
		}
	}
}

// catchUp wakes every stream when the event head moved past what this
// instance heard of (a notification was lost).
func (s *Store) catchUp(ctx context.Context, conn *pgx.Conn, c *cluster) error {
	var head int64
	if err := conn.QueryRow(ctx, `SELECT seq FROM event_head WHERE id = 1`).Scan(&head); err != nil {
		return err
	}
	if head > c.seen.Load() {
		c.seen.Store(head)
		s.lag(nil)
	}
	return nil
}

func (s *Store) lag(devices []string) {
	if l, ok := s.pub.(lagger); ok {
		if s.cluster != nil {
			s.cluster.wakes.Add(1)
		}
		l.Lag(devices)
	}
}

// ClusterWakes counts the times other instances' writes woke this
// instance's streams (0 on SQLite).
func (s *Store) ClusterWakes() uint64 {
	if s.cluster == nil {
		return 0
	}
	return s.cluster.wakes.Load()
}
