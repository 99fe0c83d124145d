package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// A device's feed is a query, not a copy: the group events (recipient NULL)
// of every group during the device's membership intervals
// (joined_seq < seq <= left_seq), plus the events addressed to the device.
// Both halves are range scans on the partial indexes of the delivery
// migration (events_group_seq, events_recipient_seq).

// MaxFeedPage bounds one feed read.
const MaxFeedPage = 1000

// eventRow is one events row as read by feed queries.
type eventRow struct {
	Seq               int64   `bun:"seq"`
	ID                string  `bun:"id"`
	ServerTS          int64   `bun:"server_ts"`
	Kind              string  `bun:"kind"`
	GroupID           []byte  `bun:"group_id"`
	Epoch             *int64  `bun:"epoch"`
	SenderDeviceID    *string `bun:"sender_device_id"`
	RecipientDeviceID *string `bun:"recipient_device_id"`
	Payload           []byte  `bun:"payload"`
}

func (r *eventRow) event() *models.Event {
	e := &models.Event{
		Seq:        r.Seq,
		ID:         r.ID,
		ServerTime: time.UnixMicro(r.ServerTS).UTC(),
		Kind:       models.EventKind(r.Kind),
		GroupID:    r.GroupID,
		Payload:    r.Payload,
	}
	if r.Epoch != nil && *r.Epoch >= 0 {
		ep := uint64(*r.Epoch)
		e.Epoch = &ep
	}
	if r.SenderDeviceID != nil {
		e.SenderDeviceID = *r.SenderDeviceID
	}
	if r.RecipientDeviceID != nil {
		e.RecipientDeviceID = *r.RecipientDeviceID
	}
	return e
}

const eventColumns = `e.seq, e.id, e.server_ts, e.kind, e.group_id, e.epoch, e.sender_device_id, e.recipient_device_id, e.payload`

// feedSQL selects a device's feed after a cursor, in seq order. Membership
// intervals of one device in one group never overlap (one active row per
// group and device), so UNION ALL yields no duplicates.
const feedSQL = `
SELECT * FROM (
  SELECT ` + eventColumns + `
  FROM group_members m
  JOIN events e ON e.group_id = m.group_id
  WHERE m.device_id = ?
    AND (m.left_seq IS NULL OR m.left_seq > ?)
    AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
    AND e.seq > max(m.joined_seq, ?)
    AND (m.left_seq IS NULL OR e.seq <= m.left_seq)
  UNION ALL
  SELECT ` + eventColumns + `
  FROM events e
  WHERE e.recipient_device_id = ? AND e.seq > ?
)
ORDER BY seq
LIMIT ?`

// Feed returns up to limit events of a device's feed with seq > after, in
// order, and whether more are waiting.
func (s *Store) Feed(ctx context.Context, deviceID string, after int64, limit int) ([]*models.Event, bool, error) {
	if limit <= 0 || limit > MaxFeedPage {
		limit = MaxFeedPage
	}
	var rows []eventRow
	if err := s.rdb.NewRaw(feedSQL, deviceID, after, after, deviceID, after, limit+1).Scan(ctx, &rows); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read feed: %w", err)
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]*models.Event, len(rows))
	for i := range rows {
		out[i] = rows[i].event()
	}
	return out, more, nil
}

// feedHeadSQL is the highest seq in a device's feed: one index probe per
// membership plus one for device-addressed events.
const feedHeadSQL = `
SELECT coalesce(max(s), 0) FROM (
  SELECT (SELECT max(e.seq) FROM events e
          WHERE e.group_id = m.group_id AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
            AND e.seq > m.joined_seq AND (m.left_seq IS NULL OR e.seq <= m.left_seq)) AS s
  FROM group_members m WHERE m.device_id = ?
  UNION ALL
  SELECT max(e.seq) FROM events e WHERE e.recipient_device_id = ?
)`

// FeedHead returns the highest seq in a device's feed (0 when empty).
func (s *Store) FeedHead(ctx context.Context, deviceID string) (int64, error) {
	var head int64
	if err := s.rdb.NewRaw(feedHeadSQL, deviceID, deviceID).Scan(ctx, &head); err != nil {
		return 0, fmt.Errorf("read feed head: %w", err)
	}
	return head, nil
}

// LastSeq returns the highest seq ever assigned (0 before the first event).
// It survives deletions: AUTOINCREMENT never reuses a sequence.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.rdb.NewRaw(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(ctx, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read last seq: %w", err)
	}
	return seq.Int64, nil
}

// AckedSeq returns the highest seq a device has acked (0 when none).
func (s *Store) AckedSeq(ctx context.Context, deviceID string) (int64, error) {
	var acked int64
	err := s.rdb.NewRaw(`SELECT acked_seq FROM device_cursors WHERE device_id = ?`, deviceID).Scan(ctx, &acked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read device cursor: %w", err)
	}
	return acked, nil
}

// Ack records that a device has processed its feed up to seq. Cursors only
// move forward: acking a lower seq changes nothing and returns the current
// cursor. A seq beyond the device's feed head is refused, so a device
// cannot release messages it has not been given.
func (s *Store) Ack(ctx context.Context, deviceID string, seq int64) (int64, error) {
	if seq < 0 {
		return 0, models.Errorf(models.EINVALID, "invalid_seq", "seq must not be negative")
	}
	var acked int64
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var cur int64
		err := tx.NewRaw(`SELECT acked_seq FROM device_cursors WHERE device_id = ?`, deviceID).Scan(ctx, &cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read device cursor: %w", err)
		}
		if seq <= cur {
			acked = cur
			return nil
		}
		var head int64
		if err := tx.NewRaw(feedHeadSQL, deviceID, deviceID).Scan(ctx, &head); err != nil {
			return fmt.Errorf("read feed head: %w", err)
		}
		if seq > head {
			return models.Errorf(models.EINVALID, "ack_beyond_head",
				"seq %d is beyond the newest event of this device's feed (%d)", seq, head)
		}
		_, err = tx.NewRaw(`INSERT INTO device_cursors (device_id, acked_seq, updated_at) VALUES (?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET acked_seq = max(acked_seq, excluded.acked_seq), updated_at = excluded.updated_at`,
			deviceID, seq, models.Millis(tx.Now())).Exec(ctx)
		if err != nil {
			return fmt.Errorf("write device cursor: %w", err)
		}
		acked = seq
		return nil
	})
	return acked, err
}

type retentionRow struct {
	AckedThrough   int64 `bun:"acked_through"`
	ExpiredThrough int64 `bun:"expired_through"`
	ExpiredBefore  int64 `bun:"expired_before"`
}

// ErrCursorAhead is returned for a resume cursor beyond every assigned seq
// (a cursor from another server or a restored backup).
var ErrCursorAhead = models.Errorf(models.EINVALID, "cursor_ahead", "the cursor is beyond the newest event on this server")

// CheckCursor tells whether a device can resume its feed after seq without
// a gap. When events it would need may have been deleted by retention, it
// returns EGONE with the device's groups and their current epochs, and the
// cursor to resume from once the client has resynchronised.
//
// Deleted events are either acked by every member (so by this device too:
// only a cursor below the device's own ack can miss them) or expired (a
// global prefix of seq: only a device that had a feed before the expiry
// cutoff can miss them).
func (s *Store) CheckCursor(ctx context.Context, deviceID string, after int64) error {
	if after < 0 {
		return models.Errorf(models.EINVALID, "invalid_cursor", "the cursor must not be negative")
	}
	last, err := s.LastSeq(ctx)
	if err != nil {
		return err
	}
	if after > last {
		return ErrCursorAhead
	}
	var r retentionRow
	if err := s.rdb.NewRaw(`SELECT acked_through, expired_through, expired_before FROM feed_retention WHERE id = 1`).Scan(ctx, &r); err != nil {
		return fmt.Errorf("read retention state: %w", err)
	}
	gone := false
	if after < r.AckedThrough {
		acked, err := s.AckedSeq(ctx, deviceID)
		if err != nil {
			return err
		}
		gone = after < acked
	}
	if !gone && after < r.ExpiredThrough {
		var n int
		err := s.rdb.NewRaw(`
SELECT (SELECT count(*) FROM group_members m
        WHERE m.device_id = ? AND m.joined_seq < ? AND (m.left_seq IS NULL OR m.left_seq > ?))
     + (SELECT count(*) FROM devices d WHERE d.id = ? AND d.created_at < ?)`,
			deviceID, r.ExpiredThrough, after, deviceID, r.ExpiredBefore).Scan(ctx, &n)
		if err != nil {
			return fmt.Errorf("check expired feed: %w", err)
		}
		gone = n > 0
	}
	if !gone {
		return nil
	}
	groups, err := s.DeviceGroupEpochs(ctx, deviceID)
	if err != nil {
		return err
	}
	e := models.Errorf(models.EGONE, "cursor_expired",
		"events after seq %d are no longer retained; resynchronise your groups and resume after seq %d", after, last)
	e.Resync = &models.Resync{ResumeAfter: last, Groups: groups}
	return e
}

// DeviceGroupEpochs lists the groups a device is a member of now, with each
// group's current epoch.
func (s *Store) DeviceGroupEpochs(ctx context.Context, deviceID string) ([]models.GroupEpoch, error) {
	var rows []struct {
		GroupID []byte `bun:"id"`
		Epoch   int64  `bun:"epoch"`
	}
	err := s.rdb.NewRaw(`SELECT g.id, g.epoch FROM group_members m JOIN groups g ON g.id = m.group_id
WHERE m.device_id = ? AND m.left_seq IS NULL ORDER BY g.id`, deviceID).Scan(ctx, &rows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read device groups: %w", err)
	}
	out := make([]models.GroupEpoch, 0, len(rows))
	for _, r := range rows {
		out = append(out, models.GroupEpoch{GroupID: r.GroupID, Epoch: uint64(max(r.Epoch, 0))})
	}
	return out, nil
}

// PruneResult counts what PruneFeed deleted.
type PruneResult struct {
	Acked   int // events every member device had acked
	Expired int // events older than the retention period
}

// pruneBatch bounds the rows one write use case deletes, so the single
// writer is never held long.
const pruneBatch = 1000

// PruneFeed deletes events nobody needs any more: a group event once every
// device that was a member at its seq has acked it, a device event once
// that device has acked it, and any event older than retention. It works in
// short batches and records the horizons CheckCursor needs. Freed payload
// bytes are given back to each group's quota.
func (s *Store) PruneFeed(ctx context.Context, retention time.Duration) (PruneResult, error) {
	var res PruneResult
	for {
		n, err := s.pruneBatch(ctx, func(ctx context.Context, tx *Tx) ([]deletedEvent, error) {
			cutoffMicros := tx.Now().Add(-retention).UnixMicro()
			// seq and server_ts grow together: expired events are a prefix,
			// so looking at the oldest batch is enough.
			var del []deletedEvent
			err := tx.NewRaw(`DELETE FROM events WHERE seq IN (
  SELECT seq FROM (SELECT seq, server_ts FROM events ORDER BY seq LIMIT ?) WHERE server_ts < ?)
RETURNING seq, group_id, length(payload) AS size`, pruneBatch, cutoffMicros).Scan(ctx, &del)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("delete expired events: %w", err)
			}
			if len(del) > 0 {
				_, err = tx.NewRaw(`UPDATE feed_retention SET expired_through = max(expired_through, ?), expired_before = max(expired_before, ?) WHERE id = 1`,
					maxSeq(del), cutoffMicros/1000).Exec(ctx)
				if err != nil {
					return nil, fmt.Errorf("record expiry horizon: %w", err)
				}
			}
			return del, nil
		})
		if err != nil {
			return res, err
		}
		res.Expired += n
		if n < pruneBatch {
			break
		}
	}
	for {
		n, err := s.pruneBatch(ctx, func(ctx context.Context, tx *Tx) ([]deletedEvent, error) {
			// A membership blocks the events of its interval that its device
			// has not acked: (max(joined_seq, acked), left_seq]. Every group
			// event at or below the lowest blocked start is acked by every
			// device that was a member at its seq.
			var del []deletedEvent
			err := tx.NewRaw(`
WITH blocked AS (
  SELECT m.group_id, min(max(m.joined_seq, coalesce(c.acked_seq, 0))) AS safe
  FROM group_members m LEFT JOIN device_cursors c ON c.device_id = m.device_id
  WHERE m.left_seq IS NULL OR coalesce(c.acked_seq, 0) < m.left_seq
  GROUP BY m.group_id
), victims AS (
  SELECT e.seq FROM groups g
  LEFT JOIN blocked b ON b.group_id = g.id
  JOIN events e ON e.group_id = g.id AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
                AND e.seq <= coalesce(b.safe, ?)
  LIMIT ?
)
DELETE FROM events WHERE seq IN (SELECT seq FROM victims)
RETURNING seq, group_id, length(payload) AS size`, int64(math.MaxInt64), pruneBatch).Scan(ctx, &del)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("delete acked group events: %w", err)
			}
			if len(del) < pruneBatch {
				var more []deletedEvent
				err := tx.NewRaw(`DELETE FROM events WHERE seq IN (
  SELECT e.seq FROM device_cursors c
  JOIN events e ON e.recipient_device_id = c.device_id AND e.seq <= c.acked_seq
  LIMIT ?)
RETURNING seq, group_id, length(payload) AS size`, pruneBatch-len(del)).Scan(ctx, &more)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return nil, fmt.Errorf("delete acked device events: %w", err)
				}
				del = append(del, more...)
			}
			if len(del) > 0 {
				if _, err := tx.NewRaw(`UPDATE feed_retention SET acked_through = max(acked_through, ?) WHERE id = 1`, maxSeq(del)).Exec(ctx); err != nil {
					return nil, fmt.Errorf("record ack horizon: %w", err)
				}
			}
			return del, nil
		})
		if err != nil {
			return res, err
		}
		res.Acked += n
		if n < pruneBatch {
			break
		}
	}
	return res, nil
}

type deletedEvent struct {
	Seq     int64  `bun:"seq"`
	GroupID []byte `bun:"group_id"`
	Size    int64  `bun:"size"`
}

func maxSeq(del []deletedEvent) int64 {
	var m int64
	for _, d := range del {
		m = max(m, d.Seq)
	}
	return m
}

// pruneBatch runs one deleting use case and gives the freed bytes back to
// the groups' quotas in the same transaction.
func (s *Store) pruneBatch(ctx context.Context, del func(ctx context.Context, tx *Tx) ([]deletedEvent, error)) (int, error) {
	var n int
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		rows, err := del(ctx, tx)
		if err != nil {
			return err
		}
		n = len(rows)
		freed := map[string]int64{}
		for _, r := range rows {
			if r.GroupID != nil {
				freed[string(r.GroupID)] += r.Size
			}
		}
		for g, b := range freed {
			if _, err := tx.NewRaw(`UPDATE groups SET bytes_used = max(0, bytes_used - ?) WHERE id = ?`, b, []byte(g)).Exec(ctx); err != nil {
				return fmt.Errorf("release group quota: %w", err)
			}
		}
		return nil
	})
	return n, err
}
