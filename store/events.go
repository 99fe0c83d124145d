package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/sovereign-im/sovereign/models"
)

// DefaultGroupQuotaBytes is the stored-bytes quota of a group when none is
// configured (config --group-quota-bytes).
const DefaultGroupQuotaBytes = 1 << 30

// nextServerTS returns the server timestamp (Unix µs) of the next event:
// the use case's clock reading, or one microsecond after the previous event
// when the clock has not moved or went backwards. Timestamps are therefore
// strictly increasing in sequence order, across restarts too: the first call
// after start reads the newest stored one.
func (tx *Tx) nextServerTS(ctx context.Context) (int64, error) {
	w := tx.w
	if !w.tsLoaded {
		var last sql.NullInt64
		// server_ts grows with seq, so the newest row holds the maximum.
		err := tx.NewRaw(`SELECT server_ts FROM events ORDER BY seq DESC LIMIT 1`).Scan(ctx, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("read last server timestamp: %w", err)
		}
		w.lastTS, w.tsLoaded = last.Int64, true
	}
	ts := tx.now.UnixMicro()
	if ts <= w.lastTS {
		ts = w.lastTS + 1
	}
	w.lastTS = ts
	return ts, nil
}

// takeSeq returns the seq of the next event this use case inserts. Where
// the engine hands seqs out (nextSeqSQL: PostgreSQL's sequence, under the
// batch lock) it asks for one. Otherwise the writer is the database's only
// writer and counts: the last seq is read once (in the batch's
// transaction, from the counter AUTOINCREMENT keeps, so a deleted top
// event is never numbered again), then advanced per event. A use case
// rolled back to its savepoint gives its seqs back (writer.run) and a
// failed batch makes the writer read the counter again (writer.finish), so
// seqs have no holes and none is used twice for a committed event.
func (tx *Tx) takeSeq(ctx context.Context) (int64, error) {
	w := tx.w
	if q := w.eng.nextSeqSQL(); q != "" {
		st, err := tx.stmt(ctx, q)
		if err != nil {
			return 0, err
		}
		var seq int64
		if err := st.QueryRowContext(ctx).Scan(&seq); err != nil {
			return 0, fmt.Errorf("next event seq: %w", err)
		}
		return seq, nil
	}
	if !w.seqLoaded {
		st, err := tx.stmt(ctx, w.eng.lastSeqSQL())
		if err != nil {
			return 0, err
		}
		var last sql.NullInt64
		if err := st.QueryRowContext(ctx).Scan(&last); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("read last event seq: %w", err)
		}
		w.lastSeq, w.seqLoaded = last.Int64, true
	}
	w.lastSeq++
	return w.lastSeq, nil
}

// insertEvent stores ev (Kind, GroupID, Epoch, SenderDeviceID,
// RecipientDeviceID, Payload set by the caller) and fills in its ID, Seq and
// ServerTime (and, for a chained event, PrevHash and Hash). A group's bytes_used grows by the payload size, so that
// bytes_used is always the sum of the payloads stored under the group.
func insertEvent(ctx context.Context, tx *Tx, ev *models.Event) error {
	return insertEventRow(ctx, tx, ev, ev.Payload, nil)
}

// insertWelcomePointer stores a welcome event ev for one added device that
// points at the commit's stored Welcome (welcomeID, see insertWelcome): its
// own payload is empty, so it adds nothing to the group's bytes_used. ev's
// Payload (the Welcome bytes) is what is published.
func insertWelcomePointer(ctx context.Context, tx *Tx, ev *models.Event, welcomeID int64) error {
	return insertEventRow(ctx, tx, ev, []byte{}, welcomeID)
}

// insertWelcome stores a commit's Welcome once, counted once in its
// group's bytes_used, and returns its id for the pointers.
func insertWelcome(ctx context.Context, tx *Tx, groupID, welcome []byte) (int64, error) {
	var id int64
	if err := tx.NewRaw(`INSERT INTO welcomes (group_id, payload, created_at) VALUES (?, ?, ?) RETURNING id`,
		groupID, welcome, models.Millis(tx.Now())).Scan(ctx, &id); err != nil {
		return 0, fmt.Errorf("insert welcome: %w", err)
	}
	upd, err := tx.stmt(ctx, qAddGroupBytes)
	if err != nil {
		return 0, err
	}
	if _, err := upd.ExecContext(ctx, len(welcome), groupID); err != nil {
		return 0, fmt.Errorf("count welcome bytes: %w", err)
	}
	return id, nil
}

// insertEventRow stores ev with stored as its payload column and
// welcomeID (nil or an int64) as its pointer.
func insertEventRow(ctx context.Context, tx *Tx, ev *models.Event, stored []byte, welcomeID any) error {
	ts, err := tx.nextServerTS(ctx)
	if err != nil {
		return err
	}
	ev.ID = uuid.Must(uuid.NewV7()).String()
	ev.ServerTime = time.UnixMicro(ts).UTC()
	var epoch any
	if ev.Epoch != nil {
		epoch = int64(*ev.Epoch)
	}
	if ev.Seq, err = tx.takeSeq(ctx); err != nil {
		return err
	}
	var prev, hash any
	if ev.Chained() {
		if err := placeOnChain(ctx, tx, ev); err != nil {
			return err
		}
		prev, hash = ev.PrevHash, ev.Hash
	}
	ins, err := tx.stmt(ctx, qInsertEvent)
	if err != nil {
		return err
	}
	_, err = ins.ExecContext(ctx, ev.Seq, ev.ID, ts, string(ev.Kind), nullBytes(ev.GroupID), epoch,
		nullString(ev.SenderDeviceID), nullString(ev.RecipientDeviceID), stored, welcomeID, prev, hash)
	if err != nil {
		return fmt.Errorf("insert %s event: %w", ev.Kind, err)
	}
	tx.w.maxSeq = max(tx.w.maxSeq, ev.Seq)
	if ev.Chained() {
		return advanceChain(ctx, tx, ev, len(stored))
	}
	if ev.GroupID != nil {
		upd, err := tx.stmt(ctx, qAddGroupBytes)
		if err != nil {
			return err
		}
		if _, err := upd.ExecContext(ctx, len(stored), ev.GroupID); err != nil {
			return fmt.Errorf("count group bytes: %w", err)
		}
	}
	return nil
}

// publish announces ev to devices once the use case is durably committed.
// With push on, the devices that have a push subscription and no open
// stream also get a push outbox row in the same use case.
func publish(tx *Tx, ev *models.Event, devices []string) {
	pub := tx.w.pub
	tx.w.noteDevices(devices)
	if tx.w.push != nil {
		tx.pushes = append(tx.pushes, pendingPush{ev: ev, devices: devices})
	}
	tx.AfterCommit(func() { pub.Publish(ev, devices) })
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// eventRow is an events row as read back.
type eventRow struct {
	Seq               int64          `bun:"seq"`
	ID                string         `bun:"id"`
	ServerTS          int64          `bun:"server_ts"`
	Kind              string         `bun:"kind"`
	GroupID           []byte         `bun:"group_id"`
	Epoch             sql.NullInt64  `bun:"epoch"`
	SenderDeviceID    sql.NullString `bun:"sender_device_id"`
	RecipientDeviceID sql.NullString `bun:"recipient_device_id"`
	Payload           []byte         `bun:"payload"`
	PrevHash          []byte         `bun:"prev_hash"`
	Hash              []byte         `bun:"hash"`
}

func (r *eventRow) event() *models.Event {
	ev := &models.Event{
		Seq:               r.Seq,
		ID:                r.ID,
		ServerTime:        time.UnixMicro(r.ServerTS).UTC(),
		Kind:              models.EventKind(r.Kind),
		GroupID:           r.GroupID,
		SenderDeviceID:    r.SenderDeviceID.String,
		RecipientDeviceID: r.RecipientDeviceID.String,
		Payload:           r.Payload,
		PrevHash:          r.PrevHash,
		Hash:              r.Hash,
	}
	if r.Epoch.Valid {
		e := uint64(r.Epoch.Int64)
		ev.Epoch = &e
	}
	return ev
}

// DeleteEvents deletes the events with the given sequence numbers inside a
// use case and gives their bytes back to their groups' quotas. Every
// deletion of events (retention here, ack-based cleanup in sync) must go
// through it so that groups.bytes_used stays the sum of stored payloads.
// A stored Welcome goes with the last welcome event that points at it.
func DeleteEvents(ctx context.Context, tx *Tx, seqs []int64) (int64, error) {
	var deleted int64
	for start := 0; start < len(seqs); start += 500 {
		chunk := seqs[start:min(start+500, len(seqs))]
		var freed []struct {
			GroupID []byte `bun:"group_id"`
			Bytes   int64  `bun:"bytes"`
		}
		err := tx.NewRaw(`SELECT group_id, SUM(length(payload)) AS bytes FROM events
WHERE seq IN (?) AND group_id IS NOT NULL GROUP BY group_id`, bun.In(chunk)).Scan(ctx, &freed)
		if err != nil {
			return deleted, fmt.Errorf("sum deleted bytes: %w", err)
		}
		var welcomes []int64
		if err := tx.NewRaw(`SELECT DISTINCT welcome_id FROM events WHERE seq IN (?) AND welcome_id IS NOT NULL`,
			bun.In(chunk)).Scan(ctx, &welcomes); err != nil {
			return deleted, fmt.Errorf("list deleted welcome pointers: %w", err)
		}
		res, err := tx.NewRaw(`DELETE FROM events WHERE seq IN (?)`, bun.In(chunk)).Exec(ctx)
		if err != nil {
			return deleted, fmt.Errorf("delete events: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted += n
		for _, f := range freed {
			if _, err := tx.NewRaw(`UPDATE groups SET bytes_used = MAX(0, bytes_used - ?) WHERE id = ?`, f.Bytes, f.GroupID).Exec(ctx); err != nil {
				return deleted, fmt.Errorf("free group bytes: %w", err)
			}
		}
		if err := deleteUnreferencedWelcomes(ctx, tx, welcomes); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// deleteUnreferencedWelcomes deletes those of the stored Welcomes ids that
// no event points at any more and gives their bytes back to their groups.
func deleteUnreferencedWelcomes(ctx context.Context, tx *Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	var gone []struct {
		GroupID []byte `bun:"group_id"`
		Bytes   int64  `bun:"bytes"`
	}
	err := tx.NewRaw(`DELETE FROM welcomes WHERE id IN (?) AND NOT EXISTS (SELECT 1 FROM events e WHERE e.welcome_id = welcomes.id)
RETURNING group_id, length(payload) AS bytes`, bun.In(ids)).Scan(ctx, &gone)
	if err != nil {
		return fmt.Errorf("delete welcomes: %w", err)
	}
	for _, g := range gone {
		if _, err := tx.NewRaw(`UPDATE groups SET bytes_used = MAX(0, bytes_used - ?) WHERE id = ?`, g.Bytes, g.GroupID).Exec(ctx); err != nil {
			return fmt.Errorf("free welcome bytes: %w", err)
		}
	}
	return nil
}

// retentionChunk bounds the rows one retention use case deletes, so the
// writer never stalls other use cases for long.
const retentionChunk = 1000

// DeleteExpiredEvents deletes every event stored before `before` (the
// retention cut-off: now minus --retention), in chunks of 1,000 rows per
// write use case, and returns how many it deleted. Because server
// timestamps grow with seq, the expired events are always a prefix of the
// sequence: each chunk reads the oldest rows only, never scanning the table.
func (s *Store) DeleteExpiredEvents(ctx context.Context, before time.Time) (int64, error) {
	cut := before.UnixMicro()
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var rows []struct {
				Seq      int64 `bun:"seq"`
				ServerTS int64 `bun:"server_ts"`
			}
			if err := tx.NewRaw(`SELECT seq, server_ts FROM events ORDER BY seq LIMIT ?`, retentionChunk).Scan(ctx, &rows); err != nil {
				return fmt.Errorf("read oldest events: %w", err)
			}
			seqs := make([]int64, 0, len(rows))
			for _, r := range rows {
				if r.ServerTS >= cut {
					break
				}
				seqs = append(seqs, r.Seq)
			}
			var err error
			if n, err = DeleteEvents(ctx, tx, seqs); err != nil || len(seqs) == 0 {
				return err
			}
			// Resume requests below this horizon may have lost events (410).
			return recordExpiry(ctx, tx, seqs[len(seqs)-1], cut)
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
