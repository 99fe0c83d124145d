package handlers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestCloneDetection: a signature counter that does not increase fails the
// login, blocks the passkey (recorded with a time) and later logins with it
// fail too, even with a higher counter.
func TestCloneDetection(t *testing.T) {
	s := testutil.NewServer(t)
	acc, pk := s.RegisterMember(t, "alice")
	good, goodID := s.AddPasskey(t, acc.Token, pk)           // counter 1 (the step-up)
	s.Login(t, pk, testutil.LoginOptions{Username: "alice"}) // counter 2
	s.Login(t, pk, testutil.LoginOptions{})                  // counter 3
	before := snap(t, s)

	clone := *pk
	clone.Credential.Counter = 2 // a copy of the key that signs with an older counter
	clone.KeepCounter = true
	expectProblem(t, s.LoginResponse(t, &clone, testutil.LoginOptions{}), http.StatusForbidden, "passkey_clone_detected")
	if after := snap(t, s); after.Sessions != before.Sessions || after.Devices != before.Devices || after.SignCounts != before.SignCounts {
		t.Fatalf("clone login changed state: %+v -> %+v", before, after)
	}

	var list struct {
		Passkeys []struct {
			ID              string     `json:"id"`
			CloneDetected   bool       `json:"clone_detected"`
			CloneDetectedAt *time.Time `json:"clone_detected_at"`
		} `json:"passkeys"`
	}
	s.Do(t, "GET", "/v1/me/passkeys", acc.Token, nil).JSON(t, &list)
	if len(list.Passkeys) != 2 || !list.Passkeys[0].CloneDetected || list.Passkeys[0].CloneDetectedAt == nil || list.Passkeys[1].CloneDetected {
		t.Fatalf("passkey not marked: %+v", list)
	}
	// The original authenticator (counter 4 now) is blocked as well: which
	// copy is genuine cannot be told.
	expectProblem(t, s.LoginResponse(t, pk, testutil.LoginOptions{Username: "alice"}), http.StatusForbidden, "passkey_clone_detected")

	// A flagged passkey does not count as usable (nor can it step up): the
	// flagged one can go but the good one cannot.
	expectProblem(t, s.DeletePasskey(t, acc.Token, good, goodID), http.StatusConflict, "last_passkey")
	if r := s.DeletePasskey(t, acc.Token, good, list.Passkeys[0].ID); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete flagged passkey = %d %s", r.StatusCode, r.Body)
	}
}

// TestCountersAndFlagsWrittenBack: each login stores the new counter and
// last use; synced passkeys whose counter stays 0 keep working.
func TestCountersAndFlagsWrittenBack(t *testing.T) {
	s := testutil.NewServer(t)
	acc, pk := s.RegisterMember(t, "alice")
	for i := 0; i < 3; i++ {
		s.Login(t, pk, testutil.LoginOptions{DeviceID: acc.DeviceID})
	}
	var sc int64
	var last *int64
	if err := s.Store.ReadDB().NewRaw(`SELECT sign_count, last_used_at FROM credentials`).Scan(t.Context(), &sc, &last); err != nil {
		t.Fatal(err)
	}
	if sc != 3 || last == nil {
		t.Fatalf("sign_count %d last_used_at %v", sc, last)
	}

	synced := s.NewPasskey()
	synced.KeepCounter = true // counter stays 0, like iCloud Keychain or Google Password Manager
	synced.Authenticator.Options.BackupEligible = true
	synced.Authenticator.Options.BackupState = true
	c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(s.Invite(t, models.RoleMember), "bob"))
	if r := finishRegister(t, s, c, synced.Create(t, c.Options)); r.StatusCode != http.StatusCreated {
		t.Fatalf("register synced = %d %s", r.StatusCode, r.Body)
	}
	bob := s.Login(t, synced, testutil.LoginOptions{})
	s.Login(t, synced, testutil.LoginOptions{})
	var list struct {
		Passkeys []struct {
			BackupEligible bool `json:"backup_eligible"`
			BackedUp       bool `json:"backed_up"`
			CloneDetected  bool `json:"clone_detected"`
		} `json:"passkeys"`
	}
	s.Do(t, "GET", "/v1/me/passkeys", bob.Token, nil).JSON(t, &list)
	if p := list.Passkeys[0]; !p.BackupEligible || !p.BackedUp || p.CloneDetected {
		t.Fatalf("synced passkey: %+v", p)
	}
}

// TestTokensAndInvitesNeverInDatabase scans the database files (main file
// and WAL) for every token and invite code in clear, as text and as bytes.
func TestTokensAndInvitesNeverInDatabase(t *testing.T) {
	s := testutil.NewServer(t)
	var secrets []string
	code := s.AdminInvite(t)
	secrets = append(secrets, code, string(bytes.ReplaceAll([]byte(code), []byte("-"), nil)))
	admin, pk := s.Register(t, code, "root")
	secrets = append(secrets, admin.Token)
	for i := 0; i < 3; i++ {
		secrets = append(secrets, s.Login(t, pk, testutil.LoginOptions{}).Token)
	}
	multi, _, err := s.Store.CreateInvite(t.Context(), store.NewInvite{Role: models.RoleMember, TTL: time.Hour, Uses: 5})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, multi)
	m, _ := s.Register(t, multi, "member")
	secrets = append(secrets, m.Token)

	var files [][]byte
	if s.Store.Engine() == "postgres" {
		// Every row of every table, as text (bytea in hex) and raw.
		dump := s.Store.DumpForTest(t.Context())
		files = append(files, dump, nil)
	}
	for _, suffix := range []string{"", "-wal"} {
		if s.Store.Engine() == "postgres" {
			break
		}
		b, err := os.ReadFile(s.Config.DBPath() + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if len(files[0])+len(files[1]) < 4096 {
		t.Fatal("database files are empty: scanning the wrong path?")
	}
	for _, sec := range secrets {
		needles := [][]byte{[]byte(sec)}
		if raw, err := base64.RawURLEncoding.DecodeString(sec); err == nil && len(raw) == models.TokenBytes {
			needles = append(needles, raw, []byte(hex.EncodeToString(raw)))
		}
		for _, n := range needles {
			for i, f := range files {
				if bytes.Contains(f, n) {
					t.Fatalf("secret %q found in database file %d", sec, i)
				}
			}
		}
	}
	// The scan can find things: the username is stored in clear.
	if !bytes.Contains(append(files[0], files[1]...), []byte("member")) {
		t.Fatal("scan found not even the username: it proves nothing")
	}
}

// TestRevokedAndExpiredTokensAre401 covers logout, ending one session,
// ending all others, revoking a device and expiry: each token fails at once
// with 401 and WWW-Authenticate.
func TestRevokedAndExpiredTokensAre401(t *testing.T) {
	s := testutil.NewServer(t)
	acc, pk := s.RegisterMember(t, "alice")
	laptop := s.Login(t, pk, testutil.LoginOptions{DeviceName: "laptop"})
	tablet := s.Login(t, pk, testutil.LoginOptions{DeviceName: "tablet"})
	phone2 := s.Login(t, pk, testutil.LoginOptions{DeviceID: acc.DeviceID})

	expect401 := func(token, why string) {
		t.Helper()
		r := s.Do(t, "GET", "/v1/me", token, nil)
		if r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: GET /v1/me = %d (WWW-Authenticate %q)", why, r.StatusCode, r.Header.Get("WWW-Authenticate"))
		}
	}
	expect200 := func(token, why string) {
		t.Helper()
		if r := s.Do(t, "GET", "/v1/me", token, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET /v1/me = %d %s", why, r.StatusCode, r.Body)
		}
	}

	// Logout ends this session only; the device may sign in again.
	if r := s.Do(t, "POST", "/v1/auth/logout", phone2.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %d %s", r.StatusCode, r.Body)
	}
	expect401(phone2.Token, "after logout")
	expect200(acc.Token, "other session of the same device")

	// Ending one session by id.
	if r := s.Do(t, "DELETE", "/v1/me/sessions/"+tablet.SessionID, acc.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("end session = %d %s", r.StatusCode, r.Body)
	}
	expect401(tablet.Token, "after ending the session")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/sessions/"+tablet.SessionID, acc.Token, nil), http.StatusNotFound, "session_not_found")

	// Revoking a device ends its sessions and bars it from signing in again.
	if r := s.Do(t, "DELETE", "/v1/me/devices/"+laptop.DeviceID, acc.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke device = %d %s", r.StatusCode, r.Body)
	}
	expect401(laptop.Token, "after revoking the device")
	expectProblem(t, s.LoginResponse(t, pk, testutil.LoginOptions{DeviceID: laptop.DeviceID}), http.StatusForbidden, "device_revoked")
	var devs struct {
		Devices []struct {
			ID        string     `json:"id"`
			RevokedAt *time.Time `json:"revoked_at"`
			Current   bool       `json:"current"`
		} `json:"devices"`
	}
	s.Do(t, "GET", "/v1/me/devices", acc.Token, nil).JSON(t, &devs)
	revoked := 0
	for _, d := range devs.Devices {
		if d.RevokedAt != nil {
			revoked++
			if d.ID != laptop.DeviceID {
				t.Fatalf("wrong device revoked: %+v", d)
			}
		}
	}
	if len(devs.Devices) != 3 || revoked != 1 {
		t.Fatalf("devices: %+v", devs)
	}

	// Signing in again on the phone keeps its device id.
	again := s.Login(t, pk, testutil.LoginOptions{DeviceID: acc.DeviceID})
	if again.DeviceID != acc.DeviceID {
		t.Fatalf("device id changed: %s -> %s", acc.DeviceID, again.DeviceID)
	}
	// End all others: only the current one remains.
	var ended struct {
		Ended int `json:"ended"`
	}
	grant := s.StepUp(t, again.Token, pk, "end_other_sessions", "")
	s.Do(t, "DELETE", "/v1/me/sessions", again.Token, nil, "Sovereign-Step-Up", grant).JSON(t, &ended)
	if ended.Ended != 1 {
		t.Fatalf("ended %d, want 1", ended.Ended)
	}
	expect401(acc.Token, "after ending other sessions")
	var sessions struct {
		Sessions []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}
	s.Do(t, "GET", "/v1/me/sessions", again.Token, nil).JSON(t, &sessions)
	if len(sessions.Sessions) != 1 || !sessions.Sessions[0].Current || sessions.Sessions[0].ID != again.SessionID {
		t.Fatalf("sessions: %+v", sessions)
	}

	// Expiry.
	s.Clock.Advance(s.Config.SessionTTL - time.Minute)
	expect200(again.Token, "just before expiry")
	s.Clock.Advance(2 * time.Minute)
	expect401(again.Token, "after expiry")

	// Garbage and missing tokens.
	expect401("not-a-token", "garbage token")
	if r := s.Do(t, "GET", "/v1/me", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token = %d", r.StatusCode)
	}
}

// TestCeremonyRateLimit: the 11th ceremony request in a burst from one IP
// gets 429 with Retry-After, whichever ceremony endpoint it hits.
func TestCeremonyRateLimit(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) {
		c.Limits.AuthBurst = 10
		c.Limits.AuthRequestsPerMin = 1
	})
	for i := 0; i < 10; i++ {
		path := "/v1/auth/login/begin"
		if i%2 == 1 {
			path = "/v1/auth/register/begin"
		}
		r := s.Do(t, "POST", path, "", map[string]any{})
		if r.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("request %d limited already", i+1)
		}
	}
	for _, path := range []string{"/v1/auth/login/finish", "/v1/auth/register/begin", "/v1/auth/login/begin"} {
		r := s.Do(t, "POST", path, "", map[string]any{})
		expectProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
			t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
		}
	}
	// After the wait the bucket has a token again.
	s.Clock.Advance(61 * time.Second)
	if r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{}); r.StatusCode != http.StatusOK {
		t.Fatalf("after waiting = %d %s", r.StatusCode, r.Body)
	}
}

// TestOpenRegistration: with --registration open, no invite is needed and
// newcomers are members; an admin invite still makes an admin.
func TestOpenRegistration(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.RegistrationMode = "open" })
	acc, _ := s.Register(t, "", "walkin")
	var me struct {
		User struct {
			Role string `json:"role"`
		} `json:"user"`
	}
	s.Do(t, "GET", "/v1/me", acc.Token, nil).JSON(t, &me)
	if me.User.Role != "member" {
		t.Fatalf("role %q", me.User.Role)
	}
	admin, _ := s.RegisterAdmin(t, "boss")
	s.Do(t, "GET", "/v1/me", admin.Token, nil).JSON(t, &me)
	if me.User.Role != "admin" {
		t.Fatalf("admin invite gave role %q", me.User.Role)
	}
}

// TestMe returns the user, device and session of the token.
func TestMe(t *testing.T) {
	s := testutil.NewServer(t)
	acc, _ := s.RegisterAdmin(t, "Root.Admin")
	var me struct {
		User struct {
			ID, Username, Role string
			DisplayName        string `json:"display_name"`
		} `json:"user"`
		Device  struct{ ID, Name string } `json:"device"`
		Session struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"session"`
	}
	s.Do(t, "GET", "/v1/me", acc.Token, nil).JSON(t, &me)
	if me.User.ID != acc.UserID || me.User.Username != "root.admin" || me.User.Role != "admin" ||
		me.Device.ID != acc.DeviceID || me.Session.ID != acc.SessionID || !me.Session.Current {
		t.Fatalf("me = %+v, account %+v", me, acc)
	}
}

// TestRenamePasskey renames and validates names.
func TestRenamePasskey(t *testing.T) {
	s := testutil.NewServer(t)
	acc, _ := s.RegisterMember(t, "alice")
	r := s.Do(t, "PATCH", "/v1/me/passkeys/"+acc.PasskeyID, acc.Token, map[string]any{"name": "  Work laptop "})
	var p struct{ Name string }
	r.JSON(t, &p)
	if r.StatusCode != http.StatusOK || p.Name != "Work laptop" {
		t.Fatalf("rename = %d %s", r.StatusCode, r.Body)
	}
	expectProblem(t, s.Do(t, "PATCH", "/v1/me/passkeys/"+acc.PasskeyID, acc.Token, map[string]any{"name": "a\x00b"}), 422, "invalid_name")
	bob, _ := s.RegisterMember(t, "bob")
	expectProblem(t, s.Do(t, "PATCH", "/v1/me/passkeys/"+acc.PasskeyID, bob.Token, map[string]any{"name": "mine"}), 404, "passkey_not_found")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/passkeys/"+acc.PasskeyID, bob.Token, nil), 404, "passkey_not_found")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/devices/"+acc.DeviceID, bob.Token, nil), 404, "device_not_found")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/sessions/"+acc.SessionID, bob.Token, nil), 404, "session_not_found")
}
