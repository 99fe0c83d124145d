package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/testutil/logbuf"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestUseCaseOverrunPerEngine: a use case that runs past UseCaseTimeout
// ends at the deadline on PostgreSQL (its statements' contexts end, it
// rolls back, the writer goes on); on SQLite its statements run without a
// cancellable context (no watcher goroutine per statement, no interrupt
// that would roll back the whole batch), it completes, and the overrun is
// logged.
func TestUseCaseOverrunPerEngine(t *testing.T) {
	saved := UseCaseTimeout
	UseCaseTimeout = 100 * time.Millisecond
	t.Cleanup(func() { UseCaseTimeout = saved })

	logs := &logbuf.Buffer{}
	s, err := Open(context.Background(), Options{
		Database: testdb.URL(t),
		Path:     filepath.Join(t.TempDir(), "data", "sovereign.db"),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	bg := context.Background()

	var hadDone bool
	err = s.Write(bg, func(ctx context.Context, tx *Tx) error {
		hadDone = ctx.Done() != nil
		if _, err := tx.NewRaw(`INSERT INTO settings (key, value, updated_at) VALUES ('overrun-1', '1', 0)`).Exec(ctx); err != nil {
			return err
		}
		time.Sleep(250 * time.Millisecond)
		_, err := tx.NewRaw(`INSERT INTO settings (key, value, updated_at) VALUES ('overrun-2', '1', 0)`).Exec(ctx)
		return err
	})
	var n int
	if cerr := s.rdb.NewRaw(`SELECT count(*) FROM settings WHERE key LIKE 'overrun-%'`).Scan(bg, &n); cerr != nil {
		t.Fatal(cerr)
	}
	if testdb.Postgres() {
		if !hadDone || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PostgreSQL: Done=%v err=%v, want the use case ended at its deadline", hadDone, err)
		}
		if n != 0 {
			t.Fatalf("PostgreSQL: %d rows of the ended use case kept", n)
		}
	} else {
		if hadDone || err != nil {
			t.Fatalf("SQLite: Done=%v err=%v, want an uncancellable context and the use case completed", hadDone, err)
		}
		if n != 2 {
			t.Fatalf("SQLite: %d rows, want 2", n)
		}
		if !strings.Contains(logs.String(), "write use case still running") {
			t.Fatalf("SQLite: the overrun was not logged; logs:\n%s", logs)
		}
	}
	// The writer goes on, and a use case on time is not reported.
	before := strings.Count(logs.String(), "still running")
	if err := s.Write(bg, func(ctx context.Context, tx *Tx) error {
		_, err := tx.NewRaw(`INSERT INTO settings (key, value, updated_at) VALUES ('after', '1', 0)`).Exec(ctx)
		return err
	}); err != nil {
		t.Fatalf("next write: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if after := strings.Count(logs.String(), "still running"); after != before {
		t.Fatalf("a use case on time was logged as overrunning")
	}
}
