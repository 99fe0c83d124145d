package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// snapshot is everything a failed ceremony must leave unchanged.
type snapshot struct {
	Users, Credentials, Devices, Sessions, InviteUses, SignCounts, LastUsed int64
}

func snap(t *testing.T, s *testutil.Server) snapshot {
	t.Helper()
	var out snapshot
	err := s.Store.ReadDB().NewRaw(`SELECT
 (SELECT count(*) FROM users) AS users,
 (SELECT count(*) FROM credentials) AS credentials,
 (SELECT count(*) FROM devices) AS devices,
 (SELECT count(*) FROM sessions) AS sessions,
 (SELECT coalesce(sum(uses_left), 0) FROM invites) AS invite_uses,
 (SELECT coalesce(sum(sign_count), 0) FROM credentials) AS sign_counts,
 (SELECT coalesce(sum(last_used_at), 0) FROM credentials) AS last_used`).Scan(context.Background(),
		&out.Users, &out.Credentials, &out.Devices, &out.Sessions, &out.InviteUses, &out.SignCounts, &out.LastUsed)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// problem is declared in keypackages_test.go.

// expectProblem checks the status and machine code of a problem response.
func expectProblem(t *testing.T, r *testutil.Response, status int, code string) {
	t.Helper()
	var p problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("status %d, body not a problem: %s", r.StatusCode, r.Body)
	}
	if r.StatusCode != status || (code != "" && p.Code != code) {
		t.Fatalf("got %d %q (%s), want %d %q", r.StatusCode, p.Code, p.Detail, status, code)
	}
	t.Logf("%d %s: %s", r.StatusCode, p.Code, p.Detail)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("content type %q", r.Header.Get("Content-Type"))
	}
}

func registerBody(invite, username string) map[string]any {
	return map[string]any{"invite_code": invite, "username": username, "display_name": "Test " + username}
}

func finishRegister(t *testing.T, s *testutil.Server, c testutil.Ceremony, cred json.RawMessage) *testutil.Response {
	t.Helper()
	return s.Do(t, "POST", "/v1/auth/register/finish", "", map[string]any{
		"ceremony_id": c.CeremonyID, "credential": cred, "device_name": "phone"})
}

func finishLogin(t *testing.T, s *testutil.Server, c testutil.Ceremony, cred json.RawMessage) *testutil.Response {
	t.Helper()
	return s.Do(t, "POST", "/v1/auth/login/finish", "", map[string]any{
		"ceremony_id": c.CeremonyID, "credential": cred, "device_name": "phone"})
}

// TestFailedCeremoniesChangeNothing: every way a ceremony can fail answers a
// clear 4xx problem and leaves users, passkeys, devices, sessions, invite
// uses and counters as they were.
func TestFailedCeremoniesChangeNothing(t *testing.T) {
	tests := []struct {
		name   string
		status int
		code   string
		// run prepares what it needs and returns the failing response;
		// snapshot is taken by calling before() right before the failure.
		run func(t *testing.T, s *testutil.Server, before func()) *testutil.Response
	}{
		{"reused invite at begin", 403, "invite_invalid", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			s.Register(t, code, "first")
			before()
			return s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(code, "second"))
		}},
		{"reused invite at finish (two ceremonies, one use)", 403, "invite_invalid", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c1 := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "first"))
			c2 := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "second"))
			if r := finishRegister(t, s, c1, s.NewPasskey().Create(t, c1.Options)); r.StatusCode != 201 {
				t.Fatalf("first finish = %d %s", r.StatusCode, r.Body)
			}
			cred := s.NewPasskey().Create(t, c2.Options)
			before()
			return finishRegister(t, s, c2, cred)
		}},
		{"expired invite", 403, "invite_invalid", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember) // valid for 24 h
			s.Clock.Advance(24*time.Hour + time.Second)
			before()
			return s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(code, "late"))
		}},
		{"invite expires between begin and finish", 403, "invite_invalid", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			s.Clock.Advance(24*time.Hour - 10*time.Second)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "late"))
			s.Clock.Advance(20 * time.Second)
			cred := s.NewPasskey().Create(t, c.Options)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"no invite in invite mode", 403, "invite_required", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			before()
			return s.Do(t, "POST", "/v1/auth/register/begin", "", map[string]any{"username": "nobody", "display_name": "N"})
		}},
		{"second registration finish", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			cred := s.NewPasskey().Create(t, c.Options)
			if r := finishRegister(t, s, c, cred); r.StatusCode != 201 {
				t.Fatalf("first finish = %d %s", r.StatusCode, r.Body)
			}
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"second login finish", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{"username": "alice"})
			cred := pk.Assert(t, c.Options)
			if r := finishLogin(t, s, c, cred); r.StatusCode != 200 {
				t.Fatalf("first finish = %d %s", r.StatusCode, r.Body)
			}
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"registration finish after 61 s", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "slow"))
			cred := s.NewPasskey().Create(t, c.Options)
			s.Clock.Advance(61 * time.Second)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"login finish after 61 s", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			cred := pk.Assert(t, c.Options)
			s.Clock.Advance(61 * time.Second)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"unknown ceremony id", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			cred := pk.Assert(t, c.Options)
			c.CeremonyID = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"login ceremony used to register", 410, "ceremony_expired", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			rc := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			lc := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			cred := s.NewPasskey().Create(t, rc.Options)
			before()
			return finishRegister(t, s, lc, cred)
		}},
		{"registration from the wrong origin", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			pk := s.NewPasskey()
			pk.RP.Origin = "https://evil.example"
			cred := pk.Create(t, c.Options)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"registration for the wrong RP ID", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			pk := s.NewPasskey()
			pk.RP.ID = "evil.example"
			cred := pk.Create(t, c.Options)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"login from the wrong origin", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{"username": "alice"})
			pk.RP.Origin = "https://evil.example"
			cred := pk.Assert(t, c.Options)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"login for the wrong RP ID", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			pk.RP.ID = "evil.example"
			cred := pk.Assert(t, c.Options)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"registration without user verification", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			pk := s.NewPasskey()
			pk.Authenticator.Options.UserNotVerified = true
			pk.Authenticator.Aaguid = [16]byte{1}
			cred := pk.Create(t, c.Options)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"login without user verification", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			pk.Authenticator.Options.UserNotVerified = true
			cred := pk.Assert(t, c.Options)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"login with a signature from another key", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			other := s.NewPasskey()
			pk.Credential.Key = other.Credential.Key
			cred := pk.Assert(t, c.Options)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"unknown username", 403, "verification_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{"username": "mallory"})
			cred := pk.Assert(t, c.Options)
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"malformed base64 in the attestation", 400, "invalid_credential", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "alice"))
			cred := mutateJSON(t, s.NewPasskey().Create(t, c.Options), func(m map[string]any) {
				m["response"].(map[string]any)["attestationObject"] = "%%%not base64%%%"
			})
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"malformed clientDataJSON in the assertion", 400, "invalid_credential", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{})
			cred := mutateJSON(t, pk.Assert(t, c.Options), func(m map[string]any) {
				m["response"].(map[string]any)["clientDataJSON"] = "bm90IGpzb24" // "not json"
			})
			before()
			return finishLogin(t, s, c, cred)
		}},
		{"malformed JSON body", 400, "", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			before()
			return s.Do(t, "POST", "/v1/auth/login/finish", "", []byte(`{"ceremony_id": "x", "credential": {`))
		}},
		{"credential of the wrong shape", 422, "validation_failed", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			before()
			return s.Do(t, "POST", "/v1/auth/login/finish", "", map[string]any{"ceremony_id": "x", "device_name": "d",
				"credential": map[string]any{"id": 5, "rawId": "x", "type": "public-key", "response": map[string]any{}}})
		}},
		{"login by name on a device of another user", 404, "device_not_found", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			bob, _ := s.RegisterMember(t, "bob")
			_, pk := s.RegisterMember(t, "alice")
			c := s.Begin(t, "/v1/auth/login/begin", "", map[string]any{"username": "alice"})
			cred := pk.Assert(t, c.Options)
			before()
			return s.Do(t, "POST", "/v1/auth/login/finish", "", map[string]any{
				"ceremony_id": c.CeremonyID, "credential": cred, "device_id": bob.DeviceID})
		}},
		{"username taken (case-folded)", 409, "username_taken", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			s.RegisterMember(t, "alice")
			code := s.Invite(t, models.RoleMember)
			// The begin step answers as for a free name (it reveals nothing);
			// the finish refuses, and the invite keeps its use.
			c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(code, "ALICE"))
			cred := s.NewPasskey().Create(t, c.Options)
			before()
			return finishRegister(t, s, c, cred)
		}},
		{"username with a bad character", 422, "", func(t *testing.T, s *testutil.Server, before func()) *testutil.Response {
			code := s.Invite(t, models.RoleMember)
			before()
			return s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(code, "al ice"))
		}},
	}
	// The failures whose cause must show in the problem detail, so each
	// case proves the check it names and not some other refusal.
	why := map[string]string{
		"registration from the wrong origin":      "Error validating origin",
		"login from the wrong origin":             "Error validating origin",
		"registration for the wrong RP ID":        "RP Hash mismatch",
		"login for the wrong RP ID":               "RP Hash mismatch",
		"registration without user verification":  "User verification required",
		"login without user verification":         "User verification required",
		"login with a signature from another key": "signature",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testutil.NewServer(t)
			var before snapshot
			taken := false
			r := tt.run(t, s, func() { before, taken = snap(t, s), true })
			if !taken {
				t.Fatal("test did not take the snapshot")
			}
			expectProblem(t, r, tt.status, tt.code)
			if w := why[tt.name]; w != "" && !strings.Contains(string(r.Body), w) {
				t.Fatalf("problem does not say %q: %s", w, r.Body)
			}
			if after := snap(t, s); after != before {
				t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func mutateJSON(t *testing.T, raw json.RawMessage, f func(map[string]any)) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
