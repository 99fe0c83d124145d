package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCancelledUseCaseDoesNotAbortItsBatch: a use case whose request is
// cancelled while its statement runs must not interrupt the batch's
// transaction (issue #19, finding 5). The honest use case in the same batch
// commits; the cancelled one's own changes are rolled back by its own
// error, nobody sees "no such savepoint".
func TestCancelledUseCaseDoesNotAbortItsBatch(t *testing.T) {
	s := openTest(t)
	bg := context.Background()
	errDishonest := errors.New("dishonest use case gives up")
	for attempt := 1; ; attempt++ {
		if attempt > 20 {
			t.Fatal("never got the two use cases into one batch")
		}
		release, started := make(chan struct{}), make(chan struct{})
		blockerDone := make(chan error, 1)
		go func() {
			blockerDone <- s.Write(bg, func(ctx context.Context, tx *Tx) error {
				close(started)
				<-release
				return nil
			})
		}()
		<-started

		var txA, txB atomic.Pointer[sql.Tx]

		ctxA, cancelA := context.WithCancel(bg)
		defer cancelA()
		aDone, bDone := make(chan error, 1), make(chan error, 1)
		go func() {
			aDone <- s.Write(ctxA, func(ctx context.Context, tx *Tx) error {
				txA.Store(tx.Tx.Tx)
				// The client goes away while the statement runs.
				timer := time.AfterFunc(5*time.Millisecond, cancelA)
				defer timer.Stop()
				_, err := tx.NewRaw(`WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000)
INSERT INTO settings (key, value, updated_at) SELECT 'slow' || x, '1', 0 FROM n`).Exec(ctx)
				if err != nil {
					return err
				}
				return errDishonest
			})
		}()
		key := "honest" + time.Now().Format("150405.000000")
		go func() {
			bDone <- s.Write(bg, func(ctx context.Context, tx *Tx) error {
				txB.Store(tx.Tx.Tx)
				_, err := tx.NewRaw(`INSERT INTO settings (key, value, updated_at) VALUES (?, '1', 0)`, key).Exec(ctx)
				return err
			})
		}()
		// Let both callers reach the writer while it is busy, so that they
		// are taken together; the batch count below checks they were.
		time.Sleep(50 * time.Millisecond)
		close(release)
		if err := <-blockerDone; err != nil {
			t.Fatalf("blocker: %v", err)
		}
		errA, errB := <-aDone, <-bDone

		if txA.Load() == nil || txA.Load() != txB.Load() {
			t.Logf("attempt %d: the use cases ran in separate batches; again", attempt)
			continue
		}
		if errB != nil {
			t.Fatalf("the honest use case failed with the cancelled one in its batch: %v", errB)
		}
		if errA == nil || (!errors.Is(errA, errDishonest) && !errors.Is(errA, context.Canceled)) || strings.Contains(errA.Error(), "savepoint") {
			t.Fatalf("the cancelled use case = %v", errA)
		}
		var n int
		if err := s.rdb.NewRaw(`SELECT COUNT(*) FROM settings WHERE key = ?`, key).Scan(bg, &n); err != nil || n != 1 {
			t.Fatalf("honest row stored %d times (%v)", n, err)
		}
		if err := s.rdb.NewRaw(`SELECT COUNT(*) FROM settings WHERE key LIKE 'slow%'`).Scan(bg, &n); err != nil || n != 0 {
			t.Fatalf("the failed use case left %d rows (%v)", n, err)
		}
		return
	}
}
