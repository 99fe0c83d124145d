package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/sovereign-im/sovereign/models"
)

// BenchmarkStats measures the dashboard's counts over 50,000 stored events
// of 1 KiB (the sum of payload lengths is a scan of the events table).
func BenchmarkStats(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: b.TempDir() + "/d/s.db", Synchronous: "NORMAL"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO groups (id, bytes_used, created_at) VALUES (x'01', 50000 * 1024, 0)`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO events (id, server_ts, kind, group_id, epoch, payload) SELECT 'e' || i, i, 'application', x'01', 0, randomblob(1024) FROM n`)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		st, err := s.Stats(ctx)
		if err != nil || st.Messages != 50000 || st.MessageBytes != 50000*1024 {
			b.Fatalf("%+v %v", st, err)
		}
	}
}

// BenchmarkAudit measures recording standalone audit entries from
// concurrent callers (group commit batches them) and reading a page.
func BenchmarkAudit(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: b.TempDir() + "/d/s.db"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.Run("append", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := s.Audit(ctx, models.AuditEntry{Actor: models.Actor{IP: "192.0.2.1"}, Action: models.AuditLoginFailed,
					Detail: map[string]any{"n": i}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			p, err := s.ListAudit(ctx, AuditFilter{Action: "auth.", Limit: 50})
			if err != nil || len(p.Entries) == 0 {
				b.Fatal(fmt.Sprint(err))
			}
		}
	})
}
