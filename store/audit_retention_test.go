package store

import (
	"context"
	"github.com/sovereign-im/sovereign/testutil/testdb"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

func TestDeleteOldAuditEntries(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Store(start.UnixMilli())
	s, err := Open(ctx, Options{Database: testdb.URL(t), Path: t.TempDir() + "/data/s.db", Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	// 2,500 old entries (more than two cleanup chunks), then a recent one.
	for range 5 {
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			for range 500 {
				if err := AppendAudit(ctx, tx, models.AuditEntry{Action: models.AuditLoginFailed, Actor: models.Actor{IP: "192.0.2.1"}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	clock.Store(start.Add(400 * 24 * time.Hour).UnixMilli())
	if err := s.Audit(ctx, models.AuditEntry{Action: models.AuditAdminSignIn}); err != nil {
		t.Fatal(err)
	}

	cutoff := time.UnixMilli(clock.Load()).Add(-365 * 24 * time.Hour)
	n, err := s.DeleteOldAuditEntries(ctx, cutoff)
	if err != nil || n != 2500 {
		t.Fatalf("deleted %d, %v; want 2500", n, err)
	}
	page, err := s.ListAudit(ctx, AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 2 || page.Entries[0].Action != models.AuditPruned || page.Entries[1].Action != models.AuditAdminSignIn {
		t.Fatalf("left: %+v", page.Entries)
	}
	if d := page.Entries[0].Detail; d["deleted"] != float64(2500) || d["before"] != cutoff.UTC().Format(time.RFC3339) {
		t.Fatalf("pruning record detail %v", d)
	}

	// Nothing old left: nothing deleted, nothing recorded.
	if n, err := s.DeleteOldAuditEntries(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second run deleted %d, %v", n, err)
	}
	if page, _ := s.ListAudit(ctx, AuditFilter{Limit: 10}); len(page.Entries) != 2 {
		t.Fatalf("second run recorded something: %d entries", len(page.Entries))
	}
}
