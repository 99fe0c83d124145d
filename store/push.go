package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/sovereign-im/sovereign/models"
)

// Web Push: subscriptions (one per device) and the durable outbox.
//
// The outbox row for a device is written inside the use case that commits
// the event calling for it (see Tx pushes and writer.enqueuePushes), so a
// crash between commit and send loses nothing; the send itself happens
// after commit, in a worker outside the single writer (package push). A
// device has at most one outbox row: a burst of events coalesces into it.
//
// Portability: the claim is one UPDATE … WHERE device_id IN (SELECT …
// LIMIT ?) RETURNING; on PostgreSQL the inner SELECT takes FOR UPDATE SKIP
// LOCKED so that several instances never claim the same row. Leases make
// "at most one send in flight per device" hold across processes.

// PushSubscription is a device's Web Push subscription: the push service's
// endpoint URL and the device's RFC 8291 keys (base64url).
type PushSubscription struct {
	DeviceID  string
	Endpoint  string
	P256dh    string
	Auth      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Urgency of a push (RFC 8030 §5.3).
const (
	PushUrgencyHigh   = "high"
	PushUrgencyNormal = "normal"
)

// pushUrgency is the urgency of an event's wake-up: messages and welcomes
// (a new conversation) are high, the rest (commits, proposals, notices)
// normal.
func pushUrgency(k models.EventKind) string {
	switch k {
	case models.KindApplication, models.KindWelcome:
		return PushUrgencyHigh
	default:
		return PushUrgencyNormal
	}
}

// pushState is the writer's view of push: which devices have a
// subscription (kept in memory, loaded at open and changed after each
// committed subscribe or unsubscribe) and which have an open stream.
type pushState struct {
	online func(deviceID string) bool
	kick   atomic.Pointer[func()]

	mu   sync.RWMutex
	subs map[string]struct{}
}

func (p *pushState) subscribed(deviceID string) bool {
	p.mu.RLock()
	_, ok := p.subs[deviceID]
	p.mu.RUnlock()
	return ok
}

func (p *pushState) set(deviceID string, on bool) {
	p.mu.Lock()
	if on {
		p.subs[deviceID] = struct{}{}
	} else {
		delete(p.subs, deviceID)
	}
	p.mu.Unlock()
}

// pendingPush is an event published by a use case, waiting to be turned
// into outbox rows before the use case's savepoint is released.
type pendingPush struct {
	ev      *models.Event
	devices []string
}

// loadPushSubscriptions fills the in-memory set of subscribed devices.
func (s *Store) loadPushSubscriptions(ctx context.Context) error {
	p := s.writer.push
	if p == nil {
		return nil
	}
	var ids []string
	if err := s.rdb.NewRaw(`SELECT device_id FROM push_subscriptions`).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("load push subscriptions: %w", err)
	}
	p.mu.Lock()
	for _, id := range ids {
		p.subs[id] = struct{}{}
	}
	p.mu.Unlock()
	return nil
}

// reloadPushSubscriptions re-reads from the database whether the given
// devices (every device when nil) have a subscription: another instance
// changed them.
func (s *Store) reloadPushSubscriptions(ctx context.Context, devices []string) {
	p := s.writer.push
	if p == nil {
		return
	}
	q := s.rdb.NewSelect().Table("push_subscriptions").Column("device_id")
	if devices != nil {
		q = q.Where("device_id IN (?)", bun.In(devices))
	}
	var ids []string
	if err := q.Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.log.Warn("reload push subscriptions after another instance changed them", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if devices == nil {
		clear(p.subs)
	}
	for _, d := range devices {
		delete(p.subs, d)
	}
	for _, id := range ids {
		p.subs[id] = struct{}{}
	}
}

// PushSubscribed reports whether this instance queues pushes for the
// device (it has a subscription, as far as this instance knows).
func (s *Store) PushSubscribed(deviceID string) bool {
	p := s.writer.push
	return p != nil && p.subscribed(deviceID)
}

// PushEnabled reports whether the store queues pushes (Options.PushOnline
// was set).
func (s *Store) PushEnabled() bool { return s.writer.push != nil }

// OnPushQueued sets the function called (after commit, never blocking)
// whenever committed events queued a push: the worker's wake-up.
func (s *Store) OnPushQueued(f func()) {
	if p := s.writer.push; p != nil {
		p.kick.Store(&f)
	}
}

// enqueuePushes turns the use case's published events into outbox rows for
// the member devices that have a subscription and no open stream (never
// the sender). It runs on the writer, inside the use case's savepoint.
func (w *writer) enqueuePushes(ctx context.Context, tx *Tx) error {
	p := w.push
	queued := false
	var st *sql.Stmt
	for _, pp := range tx.pushes {
		urgency := pushUrgency(pp.ev.Kind)
		for _, d := range pp.devices {
			if d == pp.ev.SenderDeviceID || !p.subscribed(d) || slices.Contains(tx.pushGone, d) || p.online(d) {
				continue
			}
			if st == nil {
				var err error
				if st, err = tx.stmt(ctx, qPushEnqueue); err != nil {
					return err
				}
			}
			now := models.Millis(tx.Now())
			if _, err := st.ExecContext(ctx, d, pp.ev.Seq, urgency, now, now); err != nil {
				return fmt.Errorf("queue push: %w", err)
			}
			queued = true
		}
	}
	tx.pushes = tx.pushes[:0]
	if queued {
		tx.AfterCommit(func() {
			if f := p.kick.Load(); f != nil {
				(*f)()
			}
		})
	}
	return nil
}

// SavePushSubscription stores (or replaces) the device's subscription.
func (s *Store) SavePushSubscription(ctx context.Context, sub PushSubscription) (*PushSubscription, error) {
	out := sub
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		now := models.Millis(tx.Now())
		var created int64
		err := tx.NewRaw(`INSERT INTO push_subscriptions (device_id, endpoint, p256dh, auth, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth,
  updated_at = excluded.updated_at
RETURNING created_at`, sub.DeviceID, sub.Endpoint, sub.P256dh, sub.Auth, now, now).Scan(ctx, &created)
		if err != nil {
			return fmt.Errorf("save push subscription: %w", err)
		}
		out.CreatedAt, out.UpdatedAt = models.FromMillis(created), models.FromMillis(now)
		if p := s.writer.push; p != nil {
			tx.w.notePush(sub.DeviceID)
			tx.AfterCommit(func() { p.set(sub.DeviceID, true) })
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeletePushSubscription removes the device's subscription and any push
// waiting for it; deleted is false when it had none.
func (s *Store) DeletePushSubscription(ctx context.Context, deviceID string) (deleted bool, err error) {
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		n, err := deletePushSubscription(ctx, tx, deviceID)
		deleted = n > 0
		return err
	})
	return deleted, err
}

func deletePushSubscription(ctx context.Context, tx *Tx, deviceID string) (int64, error) {
	if _, err := tx.NewRaw(`DELETE FROM push_outbox WHERE device_id = ?`, deviceID).Exec(ctx); err != nil {
		return 0, fmt.Errorf("delete push outbox: %w", err)
	}
	res, err := tx.NewRaw(`DELETE FROM push_subscriptions WHERE device_id = ?`, deviceID).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete push subscription: %w", err)
	}
	n, _ := res.RowsAffected()
	if p := tx.w.push; p != nil && n > 0 {
		tx.pushGone = append(tx.pushGone, deviceID)
		tx.w.notePush(deviceID)
		tx.AfterCommit(func() { p.set(deviceID, false) })
	}
	return n, nil
}

// PushSubscriptionOf returns the device's subscription (ENOTFOUND when it
// has none).
func (s *Store) PushSubscriptionOf(ctx context.Context, deviceID string) (*PushSubscription, error) {
	var row struct {
		Endpoint  string `bun:"endpoint"`
		P256dh    string `bun:"p256dh"`
		Auth      string `bun:"auth"`
		CreatedAt int64  `bun:"created_at"`
		UpdatedAt int64  `bun:"updated_at"`
	}
	err := s.rdb.NewRaw(`SELECT endpoint, p256dh, auth, created_at, updated_at FROM push_subscriptions WHERE device_id = ?`, deviceID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, models.Errorf(models.ENOTFOUND, "no_push_subscription", "this device has no push subscription")
	}
	if err != nil {
		return nil, fmt.Errorf("read push subscription: %w", err)
	}
	return &PushSubscription{DeviceID: deviceID, Endpoint: row.Endpoint, P256dh: row.P256dh, Auth: row.Auth,
		CreatedAt: models.FromMillis(row.CreatedAt), UpdatedAt: models.FromMillis(row.UpdatedAt)}, nil
}

// PushJob is one claimed outbox row with the subscription to send to.
type PushJob struct {
	DeviceID     string
	Seq          int64
	Urgency      string
	Version      int64
	Attempts     int
	CreatedAt    time.Time
	Subscription PushSubscription
}

// ClaimPushes leases up to limit due outbox rows for lease and returns them
// with their subscriptions. Rows that no longer need a push are deleted on
// the way: the device has no subscription, is revoked or its user disabled
// (the subscription goes too), or the device already acknowledged the
// event (it was delivered by other means).
func (s *Store) ClaimPushes(ctx context.Context, limit int, lease time.Duration) ([]PushJob, error) {
	var jobs []PushJob
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		jobs = jobs[:0]
		now := models.Millis(tx.Now())
		var claimed []struct {
			DeviceID  string `bun:"device_id"`
			Seq       int64  `bun:"seq"`
			Urgency   string `bun:"urgency"`
			Version   int64  `bun:"version"`
			Attempts  int    `bun:"attempts"`
			CreatedAt int64  `bun:"created_at"`
		}
		// On PostgreSQL every write batch of every instance holds the batch
		// advisory lock (store/engine.go), so two instances never claim the
		// same row.
		err := tx.NewRaw(`UPDATE push_outbox SET lease_until = ?
WHERE device_id IN (SELECT device_id FROM push_outbox WHERE due_at <= ? AND lease_until <= ? ORDER BY due_at LIMIT ?)
RETURNING device_id, seq, urgency, version, attempts, created_at`, now+lease.Milliseconds(), now, now, limit).Scan(ctx, &claimed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("claim pushes: %w", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		ids := make([]string, len(claimed))
		for i, c := range claimed {
			ids[i] = c.DeviceID
		}
		var subs []struct {
			DeviceID string        `bun:"device_id"`
			Endpoint string        `bun:"endpoint"`
			P256dh   string        `bun:"p256dh"`
			Auth     string        `bun:"auth"`
			Live     bool          `bun:"live"`
			Acked    sql.NullInt64 `bun:"acked"`
		}
		err = tx.NewRaw(`SELECT p.device_id, p.endpoint, p.p256dh, p.auth,
  (d.revoked_at IS NULL AND u.disabled_at IS NULL) AS live, c.acked_seq AS acked
FROM push_subscriptions p
JOIN devices d ON d.id = p.device_id
JOIN users u ON u.id = d.user_id
LEFT JOIN device_cursors c ON c.device_id = p.device_id
WHERE p.device_id IN (?)`, bun.In(ids)).Scan(ctx, &subs)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read push subscriptions: %w", err)
		}
		type subInfo struct {
			sub   PushSubscription
			live  bool
			acked int64
		}
		byID := make(map[string]subInfo, len(subs))
		for _, r := range subs {
			byID[r.DeviceID] = subInfo{sub: PushSubscription{DeviceID: r.DeviceID, Endpoint: r.Endpoint, P256dh: r.P256dh, Auth: r.Auth},
				live: r.Live, acked: r.Acked.Int64}
		}
		for _, c := range claimed {
			si, ok := byID[c.DeviceID]
			switch {
			case ok && !si.live:
				if _, err := deletePushSubscription(ctx, tx, c.DeviceID); err != nil {
					return err
				}
				continue
			case !ok || si.acked >= c.Seq:
				if _, err := tx.NewRaw(`DELETE FROM push_outbox WHERE device_id = ? AND version = ?`, c.DeviceID, c.Version).Exec(ctx); err != nil {
					return fmt.Errorf("drop push: %w", err)
				}
				continue
			}
			jobs = append(jobs, PushJob{DeviceID: c.DeviceID, Seq: c.Seq, Urgency: c.Urgency, Version: c.Version, Attempts: c.Attempts,
				CreatedAt: models.FromMillis(c.CreatedAt), Subscription: si.sub})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return jobs, nil
}

// PushOutcome is what became of a claimed push.
type PushOutcome int

// Outcomes of FinishPush.
const (
	// PushSent: the push service accepted it. The row goes unless newer
	// events bumped it; then it stays, due at Until (the coalescing gap).
	PushSent PushOutcome = iota
	// PushRetry: a temporary failure; try again at Until.
	PushRetry
	// PushDefer: not sent yet (too soon after the last push); due at Until.
	PushDefer
	// PushDrop: give this push up (refused for good, or no longer needed).
	PushDrop
	// PushGone: the subscription no longer exists (404/410): delete it.
	PushGone
)

// FinishPush records what happened to a claimed job and releases its lease.
func (s *Store) FinishPush(ctx context.Context, job PushJob, outcome PushOutcome, until time.Time) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		var err error
		switch outcome {
		case PushSent:
			var res sql.Result
			res, err = tx.NewRaw(`DELETE FROM push_outbox WHERE device_id = ? AND version = ?`, job.DeviceID, job.Version).Exec(ctx)
			if err == nil {
				if n, _ := res.RowsAffected(); n == 0 {
					_, err = tx.NewRaw(`UPDATE push_outbox SET due_at = ?, lease_until = 0, attempts = 0 WHERE device_id = ?`,
						models.Millis(until), job.DeviceID).Exec(ctx)
				}
			}
		case PushRetry:
			_, err = tx.NewRaw(`UPDATE push_outbox SET due_at = ?, lease_until = 0, attempts = attempts + 1 WHERE device_id = ?`,
				models.Millis(until), job.DeviceID).Exec(ctx)
		case PushDefer:
			_, err = tx.NewRaw(`UPDATE push_outbox SET due_at = ?, lease_until = 0 WHERE device_id = ?`,
				models.Millis(until), job.DeviceID).Exec(ctx)
		case PushDrop:
			_, err = tx.NewRaw(`DELETE FROM push_outbox WHERE device_id = ? AND version = ?`, job.DeviceID, job.Version).Exec(ctx)
			if err == nil {
				// A newer event came in meanwhile: it gets its own try.
				_, err = tx.NewRaw(`UPDATE push_outbox SET lease_until = 0, attempts = 0 WHERE device_id = ?`, job.DeviceID).Exec(ctx)
			}
		case PushGone:
			_, err = deletePushSubscription(ctx, tx, job.DeviceID)
		default:
			err = fmt.Errorf("unknown push outcome %d", outcome)
		}
		if err != nil {
			return fmt.Errorf("finish push: %w", err)
		}
		return nil
	})
}

// ResetPushLeases releases every lease: on SQLite one process owns the
// database, so at start no other worker can hold one (a crashed process's
// claims are free at once instead of when their lease ends). With several
// instances on PostgreSQL the leases may be another instance's live ones,
// so they are left to expire.
func (s *Store) ResetPushLeases(ctx context.Context) error {
	if s.eng.sharedWriters() {
		return nil
	}
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		_, err := tx.NewRaw(`UPDATE push_outbox SET lease_until = 0 WHERE lease_until > 0`).Exec(ctx)
		return err
	})
}

// NextPushDue is when the earliest unleased outbox row is due (ok false when
// there is none).
func (s *Store) NextPushDue(ctx context.Context) (at time.Time, ok bool, err error) {
	var due sql.NullInt64
	err = s.rdb.NewRaw(`SELECT MIN(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END) FROM push_outbox`).Scan(ctx, &due)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, fmt.Errorf("read next push: %w", err)
	}
	if !due.Valid {
		return time.Time{}, false, nil
	}
	return models.FromMillis(due.Int64), true, nil
}

// PushStats counts subscriptions and waiting pushes.
type PushStats struct {
	Subscriptions int64
	Outbox        int64
}

// PushStats reads the push tables' sizes.
func (s *Store) PushStats(ctx context.Context) (PushStats, error) {
	var st PushStats
	err := s.rdb.NewRaw(`SELECT (SELECT count(*) FROM push_subscriptions), (SELECT count(*) FROM push_outbox)`).Scan(ctx, &st.Subscriptions, &st.Outbox)
	if err != nil {
		return st, fmt.Errorf("read push stats: %w", err)
	}
	return st, nil
}
