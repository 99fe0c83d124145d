package gosdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/clients/go/passkey"
	"github.com/sovereign-im/sovereign/clients/go/sovereign"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestPasskeyBotSurvivesRestart: a bot keeps its passkey as JSON, a new
// process loads it and signs in with a discoverable login (no username) as
// the same device; the server (go-webauthn) verifies every ceremony and
// sees the counter grow.
func TestPasskeyBotSurvivesRestart(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bot := signUp(t, ctx, srv, srv.URL, "bot")
	saved, err := json.Marshal(bot.auth.Credentials())
	if err != nil {
		t.Fatal(err)
	}

	var creds []passkey.Credential
	if err := json.Unmarshal(saved, &creds); err != nil {
		t.Fatal(err)
	}
	restarted, _ := passkey.New(srv.Config.RPOrigins[0], passkey.Options{})
	for _, c := range creds {
		if err := restarted.AddCredential(c); err != nil {
			t.Fatal(err)
		}
	}
	anon, _ := sovereign.NewClientWithResponses(srv.URL, sovereign.WithHTTPClient(srv.Client))
	for i := range 3 {
		g, err := passkey.Login(ctx, anon, restarted, passkey.LoginOptions{DeviceID: bot.grant.DeviceId.String()})
		if err != nil {
			t.Fatalf("discoverable login %d: %v", i, err)
		}
		if g.UserId != bot.grant.UserId || g.DeviceId != bot.grant.DeviceId {
			t.Fatalf("login %d as %s/%s", i, g.UserId, g.DeviceId)
		}
	}
	if c := restarted.Credentials()[0].Counter; c != 3 {
		t.Fatalf("counter %d after three logins", c)
	}

	// A clone (same key, counter set back) is caught by the server's clone
	// check: the SDK reports the refusal as an APIError.
	clone, _ := passkey.New(srv.Config.RPOrigins[0], passkey.Options{})
	_ = clone.AddCredential(creds[0]) // counter 0 again
	_, err = passkey.Login(ctx, anon, clone, passkey.LoginOptions{Username: "bot"})
	var ae *sovereign.APIError
	if !errors.As(err, &ae) || ae.Status < 400 {
		t.Fatalf("login with a cloned passkey: %v", err)
	}
}

// TestPasskeyWithoutUserVerificationIsRefused: the server requires UV.
func TestPasskeyWithoutUserVerificationIsRefused(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	anon, _ := sovereign.NewClientWithResponses(srv.URL, sovereign.WithHTTPClient(srv.Client))
	auth, _ := passkey.New(srv.Config.RPOrigins[0], passkey.Options{UserNotVerified: true})
	_, err := passkey.Register(ctx, anon, auth, passkey.Registration{
		InviteCode: srv.Invite(t, models.RoleMember), Username: "nouv", DeviceName: "x",
	})
	var ae *sovereign.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest && ae.Status != http.StatusUnprocessableEntity && ae.Status != http.StatusForbidden {
		t.Fatalf("registration without UV: %v", err)
	}
}
