package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/sovereign-im/sovereign/store"
)

// cleanupInterval is how often expired messages and idempotency keys are
// deleted.
const cleanupInterval = 10 * time.Minute

// maintain runs the periodic cleanup until ctx ends: events older than
// --retention (store.DeleteExpiredEvents) and idempotency keys older than
// store.IdempotencyTTL. Each pass deletes in small chunks through the
// writer, so it never holds up message traffic for long.
func maintain(ctx context.Context, st *store.Store, retention time.Duration, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(cleanupInterval)
	defer t.Stop()
	for {
		cleanup(ctx, st, retention, now, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func cleanup(ctx context.Context, st *store.Store, retention time.Duration, now func() time.Time, log *slog.Logger) {
	cut := now()
	if retention > 0 {
		n, err := st.DeleteExpiredEvents(ctx, cut.Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Warn("retention cleanup", "err", err)
		} else if n > 0 {
			log.Info("retention cleanup", "deleted_events", n)
		}
	}
	if _, err := st.DeleteExpiredIdempotencyKeys(ctx, cut.Add(-store.IdempotencyTTL)); err != nil && ctx.Err() == nil {
		log.Warn("idempotency key cleanup", "err", err)
	}
}
