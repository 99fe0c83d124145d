package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// storedBytes reads what a group really stores (event payloads, stored
// Welcomes, its GroupInfo, attachments) and its bytes_used.
func storedBytes(t *testing.T, s *testutil.Server, gid []byte) (stored, used int64) {
	t.Helper()
	err := s.Store.ReadDB().NewRaw(`SELECT
  (SELECT coalesce(sum(length(payload)), 0) FROM events WHERE group_id = ?) +
  (SELECT coalesce(sum(length(payload)), 0) FROM welcomes WHERE group_id = ?) +
  (SELECT coalesce(sum(size), 0) FROM attachments WHERE group_id = ?) +
  (SELECT coalesce(length(group_info), 0) FROM groups WHERE id = ?),
  (SELECT bytes_used FROM groups WHERE id = ?)`, gid, gid, gid, gid, gid).Scan(context.Background(), &stored, &used)
	if err != nil {
		t.Fatal(err)
	}
	return stored, used
}

// TestWelcomeIsStoredOncePerCommit reproduces issue #19, finding 2's
// "adding 60 of one's own devices turned 0.44 MiB sent into +18.7 MiB
// stored": the commit's Welcome is now stored once, with a pointer per
// added device, and counted once in bytes_used (so the 60-device commit
// fits a 64 KiB quota that 60 copies would not); every device's feed still
// delivers the Welcome's bytes unchanged (long-poll, SSE, WebSocket, group
// history);
// when every device has acknowledged it, the stored Welcome goes and its
// bytes are given back.
func TestWelcomeIsStoredOncePerCommit(t *testing.T) {
	const devices = 60
	s := testutil.NewServer(t, func(c *config.Config) {
		c.Limits.GroupQuotaBytes = 65536
		c.Limits.DevicesPerUser = devices + 1
	})
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	gid := []byte("welcome-once-group-0001")
	createGroup(t, s, alice, gid)
	var own []testutil.Account
	var refs [][]byte
	for range devices {
		d := s.SeedDevice(t, alice, "")
		ref := mlstest.Ref()
		recordClaim(t, s, alice, d, ref)
		own, refs = append(own, d), append(refs, ref)
	}
	welcome := mlstest.Welcome(refs...)
	c := mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200)
	if int64(len(welcome))*devices <= 65536 {
		t.Fatalf("the Welcome (%d bytes) is too small for the test: %d copies would fit the quota", len(welcome), devices)
	}
	_, before := storedBytes(t, s, gid)
	out := mustCommit(t, s, alice, gid, map[string]any{"commit": c, "welcome": welcome})
	if len(out.Welcomes) != devices || len(out.AddedDevices) != devices {
		t.Fatalf("commit added %d devices with %d welcomes", len(out.AddedDevices), len(out.Welcomes))
	}
	stored, used := storedBytes(t, s, gid)
	if want := before + int64(len(c)) + int64(len(welcome)); used != want || stored != used {
		t.Fatalf("bytes_used %d, stored %d; want both %d (the commit plus one Welcome of %d bytes)", used, stored, want, len(welcome))
	}
	var rows, pointerBytes int64
	if err := s.Store.ReadDB().NewRaw(`SELECT (SELECT count(*) FROM welcomes),
  (SELECT coalesce(sum(length(payload)), 0) FROM events WHERE kind = 'welcome')`).Scan(context.Background(), &rows, &pointerBytes); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || pointerBytes != 0 {
		t.Fatalf("%d stored Welcomes, %d bytes in welcome events; want 1 and 0", rows, pointerBytes)
	}
	t.Logf("%d devices added: %d bytes sent (commit + Welcome), bytes_used %d → %d (%.2f× the Welcome)",
		devices, len(c)+len(welcome), before, used, float64(used-before-int64(len(c)))/float64(len(welcome)))

	// Every device's feed delivers the Welcome's bytes unchanged.
	for i, d := range own {
		var page handlers.SyncOutput
		r := s.Do(t, "GET", "/v1/sync?after=0&timeout=0", d.Token, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("device %d sync: %d %s", i, r.StatusCode, r.Body)
		}
		r.JSON(t, &page.Body)
		var got []byte
		for _, ev := range page.Body.Events {
			if ev.Kind == "welcome" {
				if ev.RecipientDeviceID != d.DeviceID || ev.Seq != out.Welcomes[i].Seq {
					t.Fatalf("device %d got welcome %+v", i, ev)
				}
				got = ev.Payload
			}
		}
		if !bytes.Equal(got, welcome) {
			t.Fatalf("device %d's feed: welcome payload of %d bytes, want the %d sent", i, len(got), len(welcome))
		}
	}
	st, _ := openSSE(t, s, own[0].Token, "?after=0")
	defer st.close()
	for {
		ev, ok := st.next(t, 5*time.Second)
		if !ok {
			t.Fatal("SSE: no welcome")
		}
		if ev.Kind == "welcome" {
			if !bytes.Equal(ev.Payload, welcome) {
				t.Fatalf("SSE welcome payload differs (%d bytes)", len(ev.Payload))
			}
			break
		}
	}
	ws, _, err := dialWS(t, s, own[1].Token, "?after=0")
	if err != nil {
		t.Fatal(err)
	}
	for found := false; !found; {
		f, err := ws.frame(t, 5*time.Second)
		if err != nil {
			t.Fatalf("WebSocket: no welcome: %v", err)
		}
		for _, ev := range f.Events {
			if ev.Kind == "welcome" {
				if !bytes.Equal(ev.Payload, welcome) {
					t.Fatalf("WebSocket welcome payload differs (%d bytes)", len(ev.Payload))
				}
				found = true
			}
		}
	}
	h := history(t, s, own[devices-1], gid)
	if len(h) == 0 || !bytes.Equal(h[len(h)-1].Payload, welcome) && !bytes.Equal(h[0].Payload, welcome) {
		t.Fatalf("group history of the last device does not hold the Welcome: %+v", h)
	}

	// Acknowledged by all but one: the stored Welcome stays; by all: it
	// goes, with its bytes.
	ack := func(a testutil.Account, seq int64) {
		if r := s.Do(t, "POST", "/v1/sync/ack", a.Token, map[string]any{"seq": seq}); r.StatusCode != http.StatusOK {
			t.Fatalf("ack: %d %s", r.StatusCode, r.Body)
		}
	}
	ack(alice, out.Commit.Seq)
	for i, d := range own[:devices-1] {
		ack(d, out.Welcomes[i].Seq)
	}
	if _, err := s.Store.DeleteAckedEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stored, used := storedBytes(t, s, gid); used != stored || used < int64(len(welcome)) {
		t.Fatalf("after 59 acks: bytes_used %d, stored %d (the Welcome of %d bytes must stay)", used, stored, len(welcome))
	}
	h = history(t, s, own[devices-1], gid)
	if !bytes.Equal(h[len(h)-1].Payload, welcome) {
		t.Fatal("the unacknowledged device lost its Welcome")
	}
	ack(own[devices-1], out.Welcomes[devices-1].Seq)
	if _, err := s.Store.DeleteAckedEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, used = storedBytes(t, s, gid)
	if err := s.Store.ReadDB().NewRaw(`SELECT count(*) FROM welcomes`).Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || used != stored || used != 0 {
		t.Fatalf("after every ack: %d stored Welcomes, bytes_used %d, stored %d; want 0, 0, 0", rows, used, stored)
	}
}

// TestWelcomeStoredBeforeTheMigrationIsStillDelivered: a welcome event
// that holds its own payload (the form before Welcomes were stored once)
// is delivered and counted as before.
func TestWelcomeStoredBeforeTheMigrationIsStillDelivered(t *testing.T) {
	s := testutil.NewServer(t)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	gid := []byte("old-welcome-group-0001")
	createGroup(t, s, alice, gid)
	old := mlstest.Welcome(mlstest.Ref())
	ev, err := testutil.Feed{St: s.Store}.SendToDevice(context.Background(), gid, bob.DeviceID, models.KindWelcome, old)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Do(t, "GET", "/v1/sync?after=0&timeout=0", bob.Token, nil)
	var page handlers.SyncOutput
	r.JSON(t, &page.Body)
	if len(page.Body.Events) != 1 || page.Body.Events[0].Seq != ev.Seq || !bytes.Equal(page.Body.Events[0].Payload, old) {
		t.Fatalf("old-form welcome: %s", fmt.Sprint(page.Body.Events))
	}
	if stored, used := storedBytes(t, s, gid); stored != used {
		t.Fatalf("bytes_used %d, stored %d", used, stored)
	}
}
