package handlers_test

import (
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestLastSeenWrittenAtMostOncePerMinute: authenticated requests record
// last-seen at most once a minute per session, and the session cache
// carries the new time, so the requests after a touch write nothing.
func TestLastSeenWrittenAtMostOncePerMinute(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	writes := func() uint64 { return s.Store.WriterStats().UseCases }
	get := func() {
		t.Helper()
		if r := s.Do(t, "GET", "/v1/me", alice.Token, nil); r.StatusCode != 200 {
			t.Fatalf("GET /v1/me: %d", r.StatusCode)
		}
	}
	get()
	before := writes()
	for range 5 {
		get()
	}
	if n := writes() - before; n != 0 {
		t.Fatalf("%d writes within the minute, want 0", n)
	}
	s.Clock.Advance(61 * time.Second)
	before = writes()
	for range 5 {
		get()
	}
	if n := writes() - before; n != 1 {
		t.Fatalf("%d writes after a minute, want exactly 1 (the touch)", n)
	}
	var sessions struct {
		Sessions []struct {
			Current    bool      `json:"current"`
			LastSeenAt time.Time `json:"last_seen_at"`
		} `json:"sessions"`
	}
	s.Do(t, "GET", "/v1/me/sessions", alice.Token, nil).JSON(t, &sessions)
	current := 0
	for _, ss := range sessions.Sessions {
		if !ss.Current {
			continue
		}
		current++
		if ss.LastSeenAt.Before(s.Clock.Now().Add(-time.Second)) {
			t.Fatalf("last seen %v, want about %v", ss.LastSeenAt, s.Clock.Now())
		}
	}
	if current != 1 {
		t.Fatalf("%d current sessions listed, want 1", current)
	}
}
