package realtime

import (
	"context"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// Source reads a device's feed from durable storage: up to limit events with
// seq > after, in order, and whether more are waiting. *store.Store
// implements it.
type Source interface {
	Feed(ctx context.Context, deviceID string, after int64, limit int) ([]*models.Event, bool, error)
}

// Reader delivers one device's feed to one stream: first the backlog from
// the store, then live events from its subscription, dropping every event
// at or below its cursor. Because the subscription exists before the first
// store read, every event committed later is either in the store read or in
// the buffer (or both): no gap. Because the cursor only moves forward and
// everything at or below it is dropped: no duplicate.
//
// A Reader is used by one goroutine.
type Reader struct {
	sub       *Subscription
	src       Source
	cursor    int64
	needStore bool // read the store before the buffer (start, or lagged)
	moreStore bool // the last store read stopped at its limit
	scratch   []*models.Event
}

// NewReader reads the feed of sub's device after cursor. The subscription
// must have been made before the call (it is owned by the reader from now).
func NewReader(sub *Subscription, src Source, cursor int64) *Reader {
	return &Reader{sub: sub, src: src, cursor: cursor, needStore: true}
}

// Cursor is the seq of the last event returned (or the starting cursor).
func (r *Reader) Cursor() int64 { return r.cursor }

// Subscription is the reader's subscription.
func (r *Reader) Subscription() *Subscription { return r.sub }

// Close ends the subscription.
func (r *Reader) Close() { r.sub.Close(nil) }

// More reports whether events are known to be waiting beyond the last batch.
func (r *Reader) More() bool { return r.needStore || r.moreStore || r.sub.Buffered() > 0 }

// TryNext returns up to max waiting events without blocking; an empty batch
// means none is waiting now.
func (r *Reader) TryNext(ctx context.Context, max int) ([]*models.Event, error) {
	for {
		if err := r.sub.Err(); err != nil {
			return nil, err
		}
		if r.needStore {
			evs, more, err := r.src.Feed(ctx, r.sub.DeviceID, r.cursor, max)
			if err != nil {
				return nil, err
			}
			r.needStore, r.moreStore = more, more
			if len(evs) > 0 {
				r.cursor = evs[len(evs)-1].Seq
				return evs, nil
			}
			continue
		}
		r.moreStore = false
		taken, lagged := r.sub.Take(r.scratch[:0], max)
		if lagged {
			// Events were dropped: they are all in the store. Events
			// published from now on are buffered again.
			clear(taken)
			r.scratch = taken[:0]
			r.needStore = true
			continue
		}
		out := make([]*models.Event, 0, len(taken))
		for _, e := range taken {
			if e.Seq > r.cursor {
				out = append(out, e)
				r.cursor = e.Seq
			}
		}
		clear(taken)
		r.scratch = taken[:0]
		if len(out) > 0 || len(taken) == 0 {
			return out, nil
		}
		// Everything taken was a duplicate of the backlog: look again.
	}
}

// Next returns the next batch of up to max events, waiting until one is
// available. It returns an empty batch and no error when timer fires (a
// heartbeat or a long-poll timeout; nil waits forever), ctx.Err() when ctx
// ends, and the subscription's error when it ends.
func (r *Reader) Next(ctx context.Context, max int, timer <-chan time.Time) ([]*models.Event, error) {
	for {
		evs, err := r.TryNext(ctx, max)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-r.sub.Wake():
		case <-r.sub.Done():
			return nil, r.sub.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer:
			return nil, nil
		}
	}
}
