package store

import (
	"context"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestLeaderSQLiteAlwaysLeads: one process owns a SQLite file; it leads.
func TestLeaderSQLiteAlwaysLeads(t *testing.T) {
	s, err := Open(context.Background(), Options{Path: t.TempDir() + "/d/db"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l := s.StartLeader(time.Second); !l.IsLeader() || s.StartLeader(time.Second) != l {
		t.Fatal("SQLite store does not lead, or a second start made a second election")
	}
}

// TestPostgresLeaderIsOneAndFailsOver: three stores on one database elect
// exactly one leader; when it closes (its lock goes with its connection),
// exactly one of the others takes over.
func TestPostgresLeaderIsOneAndFailsOver(t *testing.T) {
	url := testdb.Fresh(t)
	var stores []*Store
	var leaders []*Leader
	for range 3 {
		s, err := Open(context.Background(), Options{Database: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
		leaders = append(leaders, s.StartLeader(50*time.Millisecond))
	}
	count := func() (n, idx int) {
		for i, l := range leaders {
			if l.IsLeader() {
				n, idx = n+1, i
			}
		}
		return n, idx
	}
	waitFor(t, func() bool { n, _ := count(); return n == 1 }, "one leader")
	time.Sleep(300 * time.Millisecond) // several retry rounds: still one
	n, first := count()
	if n != 1 {
		t.Fatalf("%d leaders after retries", n)
	}
	_ = stores[first].Close()
	if leaders[first].IsLeader() {
		t.Fatal("a closed store still leads")
	}
	waitFor(t, func() bool { n, i := count(); return n == 1 && i != first }, "another instance takes over")
	time.Sleep(300 * time.Millisecond)
	if n, _ := count(); n != 1 {
		t.Fatalf("%d leaders after the failover", n)
	}
}
