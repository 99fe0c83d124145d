package scaleout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestPostgresCleanupRunsOnOneInstance: two instances with a one-second
// cleanup interval. Exactly one leads and runs the passes; the other skips
// every one. When the leader is killed (SIGKILL: PostgreSQL releases its
// lock with its connection), the other takes over and runs them.
func TestPostgresCleanupRunsOnOneInstance(t *testing.T) {
	c := newCluster(t, testdb.Fresh(t), 2, "--cleanup-interval", "1s")
	if !waitUntil(15*time.Second, func() bool {
		return c.metric(0, "sovereign_cleanup_passes_total")+c.metric(1, "sovereign_cleanup_passes_total") >= 3 &&
			c.metric(0, "sovereign_cleanup_passes_skipped_total")+c.metric(1, "sovereign_cleanup_passes_skipped_total") >= 3
	}) {
		t.Fatalf("after 15 s: passes %v/%v, skipped %v/%v", c.metric(0, "sovereign_cleanup_passes_total"), c.metric(1, "sovereign_cleanup_passes_total"),
			c.metric(0, "sovereign_cleanup_passes_skipped_total"), c.metric(1, "sovereign_cleanup_passes_skipped_total"))
	}
	leader := -1
	for i := range 2 {
		passes, skipped, lead := c.metric(i, "sovereign_cleanup_passes_total"), c.metric(i, "sovereign_cleanup_passes_skipped_total"), c.metric(i, "sovereign_cleanup_leader")
		t.Logf("instance %d: leader=%v passes=%v skipped=%v", i, lead, passes, skipped)
		switch {
		case lead == 1 && passes > 0:
			// (It may have skipped a first pass that came before it won
			// the lock on a slow start; the follower must run none.)
			if leader >= 0 {
				t.Fatal("both instances lead")
			}
			leader = i
		case lead == 0 && passes == 0 && skipped > 0:
		default:
			t.Fatalf("instance %d: leader=%v passes=%v skipped=%v: want a leader that runs every pass and a follower that runs none", i, lead, passes, skipped)
		}
	}
	if leader < 0 {
		t.Fatal("no instance leads")
	}
	if n := strings.Count(c.procs[leader].Logs(), "this instance is the leader"); n != 1 {
		t.Fatalf("leader logged its takeover %d times", n)
	}
	other := 1 - leader
	_ = c.procs[leader].Kill()
	killed := time.Now()
	if !waitUntil(15*time.Second, func() bool { return c.metric(other, "sovereign_cleanup_passes_total") >= 2 }) {
		t.Fatalf("instance %d ran %v passes in 15 s after the leader was killed", other, c.metric(other, "sovereign_cleanup_passes_total"))
	}
	t.Logf("instance %d took over and ran 2 passes %v after the leader was killed", other, time.Since(killed).Round(time.Millisecond))
	if c.metric(other, "sovereign_cleanup_leader") != 1 {
		t.Fatal("the survivor runs passes but does not report leading")
	}
}

// TestPostgresFirstAdminInviteOnceAtStart: two instances start together on
// an empty database (no tables yet): the migrations are applied once, and
// one first-admin invite is made between them; one instance prints it.
func TestPostgresFirstAdminInviteOnceAtStart(t *testing.T) {
	url := testdb.Empty(t)
	c := newCluster(t, url, 2)
	printed := 0
	for _, p := range c.procs {
		printed += strings.Count(p.Logs(), "NO ADMIN YET")
	}
	if printed != 1 {
		t.Fatalf("the first-admin invite was printed %d times, want once", printed)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var invites int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM invites WHERE role = 'admin'`).Scan(&invites); err != nil {
		t.Fatal(err)
	}
	if invites != 1 {
		t.Fatalf("%d admin invites in the database, want 1", invites)
	}
}
