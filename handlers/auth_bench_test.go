package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestLoginBeginDoesNotRevealUsernames: options for an unknown username
// have the shape of a known one's (one credential id of the same length),
// and are stable, so repeating the question reveals nothing either.
func TestLoginBeginDoesNotRevealUsernames(t *testing.T) {
	s := testutil.NewServer(t)
	s.RegisterMember(t, "alice")
	type opts struct {
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		UserVerification string `json:"userVerification"`
	}
	get := func(name string) opts {
		var o opts
		c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{"username": name})
		if err := json.Unmarshal(c.Options, &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	known, unknown, again := get("alice"), get("mallory"), get("mallory")
	if len(known.AllowCredentials) != 1 || len(unknown.AllowCredentials) == 0 ||
		known.UserVerification != unknown.UserVerification {
		t.Fatalf("known %+v, unknown %+v", known, unknown)
	}
	if ua, _ := json.Marshal(unknown); string(ua) != func() string { b, _ := json.Marshal(again); return string(b) }() {
		t.Fatal("decoy credentials change between requests")
	}

	// Nor across a restart on the same data: the key is a stored secret.
	s.Close()
	if err := s.App.Close(); err != nil {
		t.Fatal(err)
	}
	s = testutil.NewServer(t, func(c *config.Config) { c.DataDir, c.Database = s.Config.DataDir, s.Config.Database })
	if after := get("mallory"); after.AllowCredentials[0].ID != unknown.AllowCredentials[0].ID {
		t.Fatal("decoy credential id changes across a restart")
	}
	if other := get("trudy"); other.AllowCredentials[0].ID == unknown.AllowCredentials[0].ID {
		t.Fatal("two unknown usernames get the same decoy")
	}
}

// post sends JSON without response validation (benchmarks measure the
// server, not the OpenAPI validator).
func post(b *testing.B, url, token string, body any) []byte {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		b.Fatalf("%s = %d %s", url, resp.StatusCode, out)
	}
	return out
}

// BenchmarkDiscoverableLogin measures a whole passkey login over HTTP:
// begin, the virtual authenticator's signature, finish (verification, one
// durable write for the ceremony, one for the session).
func BenchmarkDiscoverableLogin(b *testing.B) {
	s := testutil.NewServer(b)
	_, pk := s.RegisterMember(b, "alice")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var c testutil.Ceremony
		_ = json.Unmarshal(post(b, s.URL+"/v1/auth/login/begin", "", map[string]any{}), &c)
		post(b, s.URL+"/v1/auth/login/finish", "", map[string]any{
			"ceremony_id": c.CeremonyID, "credential": pk.Assert(b, c.Options), "device_name": "bench"})
	}
}

// BenchmarkAuthenticatedRequest measures bearer authentication on GET
// /v1/me (hash, one session read, three small reads for the answer).
func BenchmarkAuthenticatedRequest(b *testing.B) {
	s := testutil.NewServer(b)
	acc, _ := s.RegisterMember(b, "alice")
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+acc.Token)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
