package handlers_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestFeedEndToEndThroughTheDeliveryAPI drives the real endpoints: a commit
// bundle adding Bob, then messages sent with POST /messages, arrive on the
// members' SSE streams and long-polls with the receipts' sequence numbers;
// ending Bob's session through the API closes his stream within a second.
func TestFeedEndToEndThroughTheDeliveryAPI(t *testing.T) {
	f := loadFixtures(t)
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := f.hex("commit_add_private", "groupId")
	createGroup(t, s, alice, gid)

	aliceSSE, _ := openSSE(t, s, alice.Token, "?after=0")
	bobSSE, _ := openSSE(t, s, bob.Token, "?after=0")
	waitFor(t, func() bool { return s.App.Hub().Stats().Subscriptions == 2 })

	recordClaim(t, s, alice, bob, f.hex("kp_bob_s1", "ref"))
	out := mustCommit(t, s, alice, gid, map[string]any{
		"commit":     f.bytes("commit_add_private"),
		"welcome":    f.bytes("welcome_add_bob"),
		"group_info": f.bytes("group_info_epoch1"),
	})
	app := mustSend(t, s, alice, gid, f.bytes("private_app_short"))
	prop := mustSend(t, s, bob, gid, f.bytes("public_proposal"))

	// Alice: her commit, her message, Bob's proposal (own messages come back).
	for _, want := range []struct {
		seq  int64
		kind string
	}{{out.Commit.Seq, "commit"}, {app.Seq, "application"}, {prop.Seq, "proposal"}} {
		e, ok := aliceSSE.next(t, 5*time.Second)
		if !ok || e.Seq != want.seq || e.Kind != want.kind {
			t.Fatalf("alice got %+v, want seq %d %s", e, want.seq, want.kind)
		}
	}
	// Bob: his Welcome (not the commit that added him), then the rest.
	for _, want := range []struct {
		seq  int64
		kind string
	}{{out.Welcomes[0].Seq, "welcome"}, {app.Seq, "application"}, {prop.Seq, "proposal"}} {
		e, ok := bobSSE.next(t, 5*time.Second)
		if !ok || e.Seq != want.seq || e.Kind != want.kind {
			t.Fatalf("bob got %+v, want seq %d %s", e, want.seq, want.kind)
		}
		if want.kind == "welcome" && (e.RecipientDeviceID != bob.DeviceID || string(e.Payload) != string(f.bytes("welcome_add_bob"))) {
			t.Fatalf("welcome %+v", e)
		}
	}
	// Long-poll sees the same feed.
	r := s.Do(t, "GET", "/v1/sync?after=0&timeout=0", bob.Token, nil)
	var b syncBody
	r.JSON(t, &b)
	if len(b.Events) != 3 || b.Events[0].Seq != out.Welcomes[0].Seq || b.Next != prop.Seq {
		t.Fatalf("bob's long-poll: %s", r.Body)
	}

	// Bob signs out of this session through the API: his stream ends.
	sid := (&feedServer{Server: s}).sessionID(t, bob.Token)
	ended := time.Now()
	if r := s.Do(t, "DELETE", "/v1/me/sessions/"+sid, bob.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("end session: %d %s", r.StatusCode, r.Body)
	}
	select {
	case <-bobSSE.done:
		t.Logf("stream closed %v after the session was ended", time.Since(ended))
	case <-time.After(time.Second):
		t.Fatal("bob's stream still open 1 s after his session ended")
	}
	if r := s.Do(t, "GET", "/v1/sync?timeout=0", bob.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ended session polls: %d", r.StatusCode)
	}
}
