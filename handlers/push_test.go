package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/push"
	"github.com/sovereign-im/sovereign/push/pushtest"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/testutil"
)

func pushBody(endpoint string, sub *pushtest.Subscription) map[string]any {
	return map[string]any{"endpoint": endpoint, "expirationTime": nil,
		"keys": map[string]string{"p256dh": sub.Keys.P256dh, "auth": sub.Keys.Auth}}
}

// The API subscribes a device, lists it, refuses non-public endpoints and
// unsubscribes; a message to the absent device reaches the push service.
func TestPushSubscriptionAPI(t *testing.T) {
	rx := pushtest.New(t)
	s := testutil.NewServerWith(t, server.Options{PushRootCAs: rx.RootCAs(), PushMinGap: time.Second}, func(c *config.Config) {
		c.PushAllowHosts = []string{"127.0.0.1"}
		c.PushContact = "mailto:ops@example.org"
	})
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)

	r := s.Do(t, "GET", "/v1/push/vapid-public-key", "", nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("vapid key: %d %s", r.StatusCode, r.Body)
	}
	var key struct {
		PublicKey string `json:"public_key"`
	}
	r.JSON(t, &key)
	rx.ExpectVAPIDKey(key.PublicKey)

	sub := rx.Subscribe()
	// SSRF: none of these endpoints is accepted.
	for _, ep := range []string{
		"https://localhost:9/push",       // resolves to loopback
		"https://[::1]/push",             // loopback
		"https://10.0.0.1/push",          // private
		"https://169.254.169.254/latest", // link-local (cloud metadata)
		"https://[fc00::1]/push",         // unique-local
		"https://100.64.0.1/push",        // carrier-grade NAT
		"http://push.example.org/push",   // not https
		"https://user:pw@127.0.0.1/push", // user info
	} {
		expectProblem(t, s.Do(t, "PUT", "/v1/me/devices/current/push", bob.Token, pushBody(ep, sub)), http.StatusUnprocessableEntity, "push_endpoint_refused")
	}
	bad := pushBody(sub.Endpoint, sub)
	bad["keys"] = map[string]string{"p256dh": strings.Repeat("A", 87), "auth": sub.Keys.Auth}
	expectProblem(t, s.Do(t, "PUT", "/v1/me/devices/current/push", bob.Token, bad), http.StatusUnprocessableEntity, "bad_push_keys")
	expectProblem(t, s.Do(t, "GET", "/v1/me/devices/current/push", bob.Token, nil), http.StatusNotFound, "no_push_subscription")

	// The test push service is on 127.0.0.1, allowed as --push-allow-hosts would.
	r = s.Do(t, "PUT", "/v1/me/devices/current/push", bob.Token, pushBody(sub.Endpoint, sub))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d %s", r.StatusCode, r.Body)
	}
	r = s.Do(t, "GET", "/v1/me/devices", bob.Token, nil)
	var devs struct {
		Devices []struct {
			ID   string `json:"id"`
			Push bool   `json:"push"`
		} `json:"devices"`
	}
	r.JSON(t, &devs)
	if len(devs.Devices) != 1 || !devs.Devices[0].Push {
		t.Fatalf("devices: %s", r.Body)
	}

	feed := testutil.Feed{St: s.Store}
	ctx := context.Background()
	gid := []byte("api-push-group")
	if err := feed.CreateGroup(ctx, gid, alice.DeviceID, bob.DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Send(ctx, gid, alice.DeviceID, models.KindApplication, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	rx.Wait(t, 60*time.Second, "the push", func() bool { return len(rx.PushesFor(sub)) == 1 })
	if p := rx.PushesFor(sub)[0]; !bytes.Equal(p.Plaintext, push.Payload) || p.Claims["sub"] != "mailto:ops@example.org" {
		t.Fatalf("push %q sub %v", p.Plaintext, p.Claims["sub"])
	}
	if f := rx.Failures(); len(f) > 0 {
		t.Fatalf("push service refused: %v", f)
	}

	if r := s.Do(t, "DELETE", "/v1/me/devices/current/push", bob.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("unsubscribe: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "DELETE", "/v1/me/devices/current/push", bob.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("unsubscribe again: %d %s", r.StatusCode, r.Body)
	}
	expectProblem(t, s.Do(t, "GET", "/v1/me/devices/current/push", bob.Token, nil), http.StatusNotFound, "no_push_subscription")
	expectProblem(t, s.Do(t, "PUT", "/v1/me/devices/current/push", "", pushBody(sub.Endpoint, sub)), http.StatusUnauthorized, "")
}

// With --push=false the key and subscriptions answer 404 push_disabled.
func TestPushDisabled(t *testing.T) {
	rx := pushtest.New(t)
	s := testutil.NewServer(t, func(c *config.Config) { c.Push = false })
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	expectProblem(t, s.Do(t, "GET", "/v1/push/vapid-public-key", "", nil), http.StatusNotFound, "push_disabled")
	sub := rx.Subscribe()
	expectProblem(t, s.Do(t, "PUT", "/v1/me/devices/current/push", bob.Token, pushBody(sub.Endpoint, sub)), http.StatusNotFound, "push_disabled")
}
