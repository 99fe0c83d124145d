package handlers_test

import (
	"net/http"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

// TestPasskeyJourney: register via invite, log in by username, log in
// without username, add a second passkey, log in with it, delete the first.
func TestPasskeyJourney(t *testing.T) {
	s := testutil.NewServer(t)
	acc, pk1 := s.RegisterMember(t, "Alice")
	if acc.Username != "alice" || acc.Token == "" || acc.DeviceID == "" {
		t.Fatalf("account = %+v", acc)
	}
	me := s.Do(t, "GET", "/v1/me", acc.Token, nil)
	if me.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/me = %d %s", me.StatusCode, me.Body)
	}

	byName := s.Login(t, pk1, testutil.LoginOptions{Username: "alice", DeviceName: "laptop"})
	if byName.UserID != acc.UserID || byName.DeviceID == acc.DeviceID {
		t.Fatalf("login by username: %+v", byName)
	}
	again := s.Login(t, pk1, testutil.LoginOptions{DeviceID: acc.DeviceID})
	if again.UserID != acc.UserID || again.DeviceID != acc.DeviceID {
		t.Fatalf("discoverable login on the same device: %+v", again)
	}

	pk2, pk2ID := s.AddPasskey(t, again.Token, pk1)
	with2 := s.Login(t, pk2, testutil.LoginOptions{})
	if with2.UserID != acc.UserID || with2.PasskeyID != pk2ID {
		t.Fatalf("login with second passkey: %+v (want passkey %s)", with2, pk2ID)
	}
	if r := s.DeletePasskey(t, with2.Token, pk2, acc.PasskeyID); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete first passkey = %d %s", r.StatusCode, r.Body)
	}
	if r := s.LoginResponse(t, pk1, testutil.LoginOptions{}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("login with deleted passkey = %d %s", r.StatusCode, r.Body)
	}
	if r := s.DeletePasskey(t, with2.Token, pk2, pk2ID); r.StatusCode != http.StatusConflict {
		t.Fatalf("delete last passkey = %d %s", r.StatusCode, r.Body)
	}
}
