package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "data", "sovereign.db")})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	s := openTest(t)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("db mode = %04o, want 0600", m)
	}
	di, err := os.Stat(filepath.Dir(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Fatalf("dir mode = %04o, want 0700", m)
	}
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}
}

func TestOpenRefusesReadableFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir, db string)
	}{
		{"group-readable file", func(dir, db string) { _ = os.WriteFile(db, nil, 0o640) }},
		{"world-readable directory", func(dir, db string) { _ = os.Chmod(dir, 0o755) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "sovereign.db")
			tt.setup(dir, db)
			_, err := Open(context.Background(), Options{Path: db})
			var perr *InsecurePermissionsError
			if !errors.As(err, &perr) {
				t.Fatalf("Open = %v, want InsecurePermissionsError", err)
			}
			s, err := Open(context.Background(), Options{Path: db, AllowInsecurePermissions: true})
			if err != nil {
				t.Fatalf("Open with override: %v", err)
			}
			_ = s.Close()
		})
	}
}

func createCounter(t *testing.T, s *Store) {
	t.Helper()
	err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.NewRaw(`SELECT count(*) FROM t`).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWriterBatchesAndIsolates runs many concurrent use cases, some failing:
// the failing ones leave nothing behind, the others all commit, hooks run
// only for committed ones, and batches hold more than one use case.
func TestWriterBatchesAndIsolates(t *testing.T) {
	s := openTest(t)
	createCounter(t, s)
	const n = 400
	var hooks atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, i); err != nil {
					return err
				}
				tx.AfterCommit(func() { hooks.Add(1) })
				if i%10 == 0 {
					return errors.New("use case refuses") // rolled back alone
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if (i%10 == 0) != (err != nil) {
			t.Fatalf("use case %d: err = %v", i, err)
		}
		if err != nil {
			failed++
		}
	}
	if got, want := count(t, s), n-failed; got != want {
		t.Fatalf("rows = %d, want %d", got, want)
	}
	if got := hooks.Load(); got != int64(n-failed) {
		t.Fatalf("after-commit hooks ran %d times, want %d", got, n-failed)
	}
	st := s.WriterStats()
	if st.Batches >= st.UseCases {
		t.Fatalf("no batching: %d batches for %d use cases", st.Batches, st.UseCases)
	}
	t.Logf("%d use cases in %d batches", st.UseCases, st.Batches)
}

func TestWriterPanicAndConstraintStayIsolated(t *testing.T) {
	s := openTest(t)
	createCounter(t, s)
	ctx := context.Background()
	if err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ('a')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, _ = tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ('b')`)
		panic("boom")
	})
	if err == nil {
		t.Fatal("panicking use case reported success")
	}
	err = s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ('a')`)
		return err
	})
	if !isUniqueViolation(err) {
		t.Fatalf("duplicate insert: %v, want unique violation", err)
	}
	if got := count(t, s); got != 1 {
		t.Fatalf("rows = %d, want 1", got)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "x", "db")})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	err = s.Write(context.Background(), func(ctx context.Context, tx *Tx) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestWriteHonoursCancelledContext(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with cancelled ctx = %v", err)
	}
	_ = time.Now
}

// BenchmarkWriterBatchCommit measures durable (synchronous=FULL) single-row
// use cases per second with 64 concurrent writers sharing commits.
func BenchmarkWriterBatchCommit(b *testing.B) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "d", "db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_ = s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
		return err
	})
	payload := make([]byte, 512)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, payload)
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st := s.WriterStats()
	b.ReportMetric(float64(st.UseCases)/float64(max(st.Batches, 1)), "usecases/batch")
}

func TestOpenPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a#b?c%d")
	s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "sovereign.db")})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sovereign.db")); err != nil || fi.Size() == 0 {
		t.Fatalf("database not written at the given path: %v", err)
	}
	var mode string
	if err := s.ReadDB().NewRaw(`PRAGMA journal_mode`).Scan(context.Background(), &mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q %v: pragmas lost", mode, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "a")); err == nil {
		t.Fatal("a truncated path was created")
	}
}
