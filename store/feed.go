package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
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

// eventColumns are the columns of an event as read; a welcome event that
// points at its commit's stored Welcome (welcome_id) reads those bytes as
// its payload, so it is delivered as if it held them.
const eventColumns = `e.seq, e.id, e.server_ts, e.kind, e.group_id, e.epoch, e.sender_device_id, e.recipient_device_id,
  CASE WHEN e.welcome_id IS NULL THEN e.payload ELSE (SELECT w.payload FROM welcomes w WHERE w.id = e.welcome_id) END AS payload,
  e.prev_hash, e.hash`

// feedSQL selects the feed of device ?2 after cursor ?1, in seq order, at
// most ?3 rows (a page plus one, to tell whether more are waiting), none
// above ?4 (the durable watermark, Store.readCap).
// Membership intervals of one device in one group never overlap (one active
// row per group and device), so UNION ALL yields no duplicates.
//
// The bound keeps a page's cost independent of the backlog: without it,
// SQLite reads every event after the cursor in every group to sort them
// and keep the first ?3, so catching up after a long absence was quadratic.
// Each part of the feed (a membership interval, the device-addressed
// events) holds its events in seq order in an index, so the ?3-th of each
// part is one bounded index scan away; the smallest of those is at least
// the page's last seq (that part alone has ?3 events up to it), and the
// page query then reads no event past it. NULL (no part that long) means
// no bound: the rest of the feed is then at most parts × ?3 events.
const feedSQL = `
WITH bound(seq) AS (
  SELECT coalesce(min(b), 9223372036854775807) FROM (
    SELECT (SELECT e.seq FROM events e
            WHERE e.group_id = m.group_id AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
              AND e.seq > max(m.joined_seq, ?1)
              AND (m.left_seq IS NULL OR e.seq <= m.left_seq)
            ORDER BY e.seq LIMIT 1 OFFSET ?3 - 1) AS b
    FROM group_members m
    WHERE m.device_id = ?2 AND (m.left_seq IS NULL OR m.left_seq > ?1)
    UNION ALL
    SELECT (SELECT e.seq FROM events e
            WHERE e.recipient_device_id = ?2 AND e.seq > ?1
            ORDER BY e.seq LIMIT 1 OFFSET ?3 - 1)
  ) AS parts
)
SELECT * FROM (
  SELECT ` + eventColumns + `
  FROM group_members m
  JOIN events e ON e.group_id = m.group_id
  WHERE m.device_id = ?2
    AND (m.left_seq IS NULL OR m.left_seq > ?1)
    AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
    AND e.seq > max(m.joined_seq, ?1)
    AND (m.left_seq IS NULL OR e.seq <= m.left_seq)
    AND e.seq <= (SELECT seq FROM bound) AND e.seq <= ?4
  UNION ALL
  SELECT ` + eventColumns + `
  FROM events e
  WHERE e.recipient_device_id = ?2 AND e.seq > ?1
    AND e.seq <= (SELECT seq FROM bound) AND e.seq <= ?4
) AS page
ORDER BY seq
LIMIT ?3`

// Feed returns up to limit events of a device's feed with seq > after, in
// order, and whether more are waiting.
func (s *Store) Feed(ctx context.Context, deviceID string, after int64, limit int) ([]*models.Event, bool, error) {
	if limit <= 0 || limit > MaxFeedPage {
		limit = MaxFeedPage
	}
	rows, err := s.readFeed(ctx, deviceID, after, limit+1)
	if err != nil {
		return nil, false, err
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

// readFeed runs the prepared feed query.
func (s *Store) readFeed(ctx context.Context, deviceID string, after int64, n int) ([]eventRow, error) {
	rs, err := s.readStmts.feed.QueryContext(ctx, after, deviceID, n, s.readCap())
	if err != nil {
		return nil, fmt.Errorf("read feed: %w", err)
	}
	defer rs.Close()
	var rows []eventRow // most reads are of an empty or short backlog: no up-front buffer
	for rs.Next() {
		var r eventRow
		if err := rs.Scan(&r.Seq, &r.ID, &r.ServerTS, &r.Kind, &r.GroupID, &r.Epoch, &r.SenderDeviceID, &r.RecipientDeviceID, &r.Payload, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("read feed: %w", err)
		}
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read feed: %w", err)
	}
	return rows, nil
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
) AS heads`

// FeedHead returns the highest seq in a device's feed (0 when empty).
func (s *Store) FeedHead(ctx context.Context, deviceID string) (int64, error) {
	var head int64
	if err := s.rdb.NewRaw(feedHeadSQL, deviceID, deviceID).Scan(ctx, &head); err != nil {
		return 0, fmt.Errorf("read feed head: %w", err)
	}
	return head, nil
}

// LastSeq returns the highest seq ever assigned (0 before the first event).
// It survives deletions: a sequence number is never reused.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.rdb.NewRaw(s.eng.lastSeqSQL()).Scan(ctx, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read last seq: %w", err)
	}
	return seq.Int64, nil
}

// LastSeq returns, inside a use case, the highest seq assigned so far,
// counting events inserted earlier in the same batch.
func (tx *Tx) LastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := tx.NewRaw(tx.w.eng.lastSeqSQL()).Scan(ctx, &seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read last seq: %w", err)
	}
	return max(seq.Int64, tx.w.maxSeq), nil
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
		tx.KeepsAuth() // device_cursors only
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
ON CONFLICT (device_id) DO UPDATE SET acked_seq = max(device_cursors.acked_seq, excluded.acked_seq), updated_at = excluded.updated_at`,
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
	Acked   int64 // events every member device had acked
	Expired int64 // events older than the retention period
}

// PruneFeed runs both feed cleanups: DeleteExpiredEvents (older than
// retention) then DeleteAckedEvents.
func (s *Store) PruneFeed(ctx context.Context, retention time.Duration) (PruneResult, error) {
	var res PruneResult
	var err error
	if res.Expired, err = s.DeleteExpiredEvents(ctx, s.now().Add(-retention)); err != nil {
		return res, err
	}
	res.Acked, err = s.DeleteAckedEvents(ctx)
	return res, err
}

// ackedGroupEventsSQL picks group events every device that was a member at
// their seq has acked. A membership still needs the events of its interval
// its device has not acked, (max(joined_seq, acked), left_seq]; every group
// event at or below the lowest such start is acked by every device that
// was a member at its seq. (Events in holes above it wait for the next
// pass or for retention.)
const ackedGroupEventsSQL = `
WITH blocked AS (
  SELECT m.group_id, min(max(m.joined_seq, coalesce(c.acked_seq, 0))) AS safe
  FROM group_members m LEFT JOIN device_cursors c ON c.device_id = m.device_id
  WHERE m.left_seq IS NULL OR coalesce(c.acked_seq, 0) < m.left_seq
  GROUP BY m.group_id
)
SELECT e.seq FROM groups g
LEFT JOIN blocked b ON b.group_id = g.id
JOIN events e ON e.group_id = g.id AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
              AND e.seq <= coalesce(b.safe, ?)
LIMIT ?`

// ackedDeviceEventsSQL picks events addressed to a device it has acked.
const ackedDeviceEventsSQL = `
SELECT e.seq FROM device_cursors c
JOIN events e ON e.recipient_device_id = c.device_id AND e.seq <= c.acked_seq
LIMIT ?`

// DeleteAckedEvents deletes the events nobody needs any more: a group event
// once every device that was a member at its seq has acked it, a device
// event once its recipient has acked it. It works in use cases of at most
// 1,000 rows, frees group quota through DeleteEvents, and records the
// horizon CheckCursor needs.
func (s *Store) DeleteAckedEvents(ctx context.Context) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var seqs []int64
			if err := tx.NewRaw(ackedGroupEventsSQL, int64(math.MaxInt64), retentionChunk).Scan(ctx, &seqs); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find acked group events: %w", err)
			}
			if len(seqs) < retentionChunk {
				var more []int64
				if err := tx.NewRaw(ackedDeviceEventsSQL, retentionChunk-len(seqs)).Scan(ctx, &more); err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("find acked device events: %w", err)
				}
				seqs = append(seqs, more...)
			}
			if len(seqs) == 0 {
				return nil
			}
			var err error
			if n, err = DeleteEvents(ctx, tx, seqs); err != nil {
				return err
			}
			_, err = tx.NewRaw(`UPDATE feed_retention SET acked_through = max(acked_through, ?) WHERE id = 1`, slices.Max(seqs)).Exec(ctx)
			if err != nil {
				return fmt.Errorf("record ack horizon: %w", err)
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
		if n < retentionChunk {
			return total, nil
		}
	}
}

// recordExpiry notes, in the use case that deleted them, that events up to
// seq were deleted for being older than before (Unix µs).
func recordExpiry(ctx context.Context, tx *Tx, seq, beforeMicros int64) error {
	_, err := tx.NewRaw(`UPDATE feed_retention SET expired_through = max(expired_through, ?), expired_before = max(expired_before, ?) WHERE id = 1`,
		seq, beforeMicros/1000).Exec(ctx)
	if err != nil {
		return fmt.Errorf("record expiry horizon: %w", err)
	}
	return nil
}
