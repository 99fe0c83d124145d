package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// joinGroup makes a's device a member of gid from now on (what an accepted
// Welcome does), without the MLS ceremony these tests are not about.
func joinGroup(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte) {
	t.Helper()
	err := s.Store.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, device_id, joined_seq)
VALUES (?, ?, (SELECT coalesce(max(seq), 0) FROM events))`, gid, a.DeviceID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

type removeNotice struct {
	Type, DeviceID, UserID, Reason string
}

// notices returns the remove_device notices in a's view of gid.
func notices(t *testing.T, s *testutil.Server, a testutil.Account, gid []byte) []removeNotice {
	t.Helper()
	var out []removeNotice
	for _, e := range history(t, s, a, gid) {
		if e.Kind != "notice" {
			continue
		}
		var n struct {
			Type     string `json:"type"`
			DeviceID string `json:"device_id"`
			UserID   string `json:"user_id"`
			Reason   string `json:"reason"`
		}
		if err := json.Unmarshal(e.Payload, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, removeNotice{n.Type, n.DeviceID, n.UserID, n.Reason})
	}
	return out
}

// lastAudit returns the newest audit entry of an action.
func lastAudit(t *testing.T, s *testutil.Server, admin testutil.Account, action string) map[string]any {
	t.Helper()
	var page struct {
		Entries []map[string]any `json:"entries"`
	}
	s.Do(t, "GET", "/v1/admin/audit?limit=1&action="+action, admin.Token, nil).JSON(t, &page)
	if len(page.Entries) == 0 {
		t.Fatalf("no %s audit entry", action)
	}
	return page.Entries[0]
}

func TestAdminUsersSearchAndPaging(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	for _, u := range []string{"alice", "bob", "carol", "a_b", "axb", "dave"} {
		s.SeedAccount(t, u, models.RoleMember)
	}
	type page struct {
		Users []struct {
			Username       string `json:"username"`
			Devices        int    `json:"devices"`
			ActiveSessions int    `json:"active_sessions"`
		} `json:"users"`
		NextAfter *string `json:"next_after"`
	}
	var names []string
	path := "/v1/admin/users?limit=3"
	for {
		var p page
		s.Do(t, "GET", path, admin.Token, nil).JSON(t, &p)
		for _, u := range p.Users {
			names = append(names, u.Username)
			if u.Devices != 1 || u.ActiveSessions != 1 {
				t.Fatalf("%s: devices %d sessions %d", u.Username, u.Devices, u.ActiveSessions)
			}
		}
		if p.NextAfter == nil {
			break
		}
		path = "/v1/admin/users?limit=3&after=" + *p.NextAfter
	}
	if got := strings.Join(names, ","); got != "a_b,alice,axb,bob,carol,dave,root" {
		t.Fatalf("pages = %s", got)
	}
	for q, want := range map[string]string{
		"AL":  "alice",
		"_":   "a_b", // a literal underscore, not LIKE's wildcard
		"%25": "",    // a literal percent sign matches nobody
		"o":   "bob,carol,root",
		"zzz": "",
	} {
		var p page
		s.Do(t, "GET", "/v1/admin/users?q="+q, admin.Token, nil).JSON(t, &p)
		var got []string
		for _, u := range p.Users {
			got = append(got, u.Username)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("q=%s: %v, want %s", q, got, want)
		}
	}
	for _, q := range []string{"limit=0", "limit=201", "q=" + strings.Repeat("x", 65)} {
		if r := s.Do(t, "GET", "/v1/admin/users?"+q, admin.Token, nil); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", q, r.StatusCode)
		}
	}
}

func TestAdminUserDetail(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	bob, pk := s.RegisterMember(t, "bob")
	s.Login(t, pk, testutil.LoginOptions{DeviceName: "Bob's laptop"})
	createGroup(t, s, bob, []byte("g1"))
	createGroup(t, s, bob, []byte("g2"))
	r := s.Do(t, "GET", "/v1/admin/users/"+bob.UserID, admin.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("detail: %d %s", r.StatusCode, r.Body)
	}
	var d struct {
		Username   string `json:"username"`
		Passkeys   int    `json:"passkeys"`
		Groups     int    `json:"groups"`
		Devices    int    `json:"devices"`
		DeviceList []struct {
			Name string `json:"name"`
		} `json:"device_list"`
		Sessions []struct {
			DeviceName string `json:"device_name"`
		} `json:"sessions"`
	}
	r.JSON(t, &d)
	if d.Username != "bob" || d.Passkeys != 1 || d.Groups != 2 || d.Devices != 2 || len(d.DeviceList) != 2 || len(d.Sessions) != 2 ||
		d.Sessions[0].DeviceName != "Bob's laptop" {
		t.Fatalf("detail %+v", d)
	}
	if r := s.Do(t, "GET", "/v1/admin/users/0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f", admin.Token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown user: %d", r.StatusCode)
	}
	if r := s.Do(t, "GET", "/v1/admin/users/not-a-uuid", admin.Token, nil); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad id: %d", r.StatusCode)
	}
}

// Disabling cuts a user off at once: tokens die, passkey sign-in is
// refused, their devices leave their groups with notices to the others;
// enabling lets them sign in again.
func TestAdminDisableAndEnable(t *testing.T) {
	s := testutil.NewServer(t)
	admin, _ := s.RegisterAdmin(t, "root")
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob, pk := s.RegisterMember(t, "bob")
	gid := []byte("family")
	createGroup(t, s, alice, gid)
	joinGroup(t, s, bob, gid)
	mustSend(t, s, bob, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))

	r := s.Do(t, "POST", "/v1/admin/users/"+bob.UserID+"/disable", admin.Token, nil)
	var out struct {
		User struct {
			DisabledAt *string `json:"disabled_at"`
		} `json:"user"`
		SessionsRevoked int `json:"sessions_revoked"`
		Groups          int `json:"groups"`
	}
	r.JSON(t, &out)
	if r.StatusCode != http.StatusOK || out.User.DisabledAt == nil || out.SessionsRevoked != 1 || out.Groups != 1 {
		t.Fatalf("disable: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/me", bob.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("disabled user's token: %d", r.StatusCode)
	}
	if r := s.LoginResponse(t, pk, testutil.LoginOptions{}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("disabled user's login: %d %s", r.StatusCode, r.Body)
	}
	if n := notices(t, s, alice, gid); len(n) != 1 || n[0] != (removeNotice{"remove_device", bob.DeviceID, bob.UserID, "user_disabled"}) {
		t.Fatalf("notices %+v", n)
	}
	if e := lastAudit(t, s, admin, "user.disable"); e["target_id"] != bob.UserID || e["detail"].(map[string]any)["groups"] != 1.0 {
		t.Fatalf("audit %v", e)
	}
	// A second disable changes nothing; self-disable is refused.
	if r := s.Do(t, "POST", "/v1/admin/users/"+bob.UserID+"/disable", admin.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("disable again: %d", r.StatusCode)
	}
	if r := s.Do(t, "POST", "/v1/admin/users/"+admin.UserID+"/disable", admin.Token, nil); r.StatusCode != http.StatusConflict {
		t.Fatalf("self-disable: %d %s", r.StatusCode, r.Body)
	}

	if r := s.Do(t, "POST", "/v1/admin/users/"+bob.UserID+"/enable", admin.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("enable: %d %s", r.StatusCode, r.Body)
	}
	again := s.Login(t, pk, testutil.LoginOptions{})
	if r := s.Do(t, "GET", "/v1/me", again.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("re-enabled user's new token: %d", r.StatusCode)
	}
	lastAudit(t, s, admin, "user.enable")
}

func TestAdminRevokeUserSessions(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	bob, pk := s.RegisterMember(t, "bob")
	second := s.Login(t, pk, testutil.LoginOptions{})
	r := s.Do(t, "POST", "/v1/admin/users/"+bob.UserID+"/revoke-sessions", admin.Token, nil)
	var out struct {
		SessionsRevoked int `json:"sessions_revoked"`
	}
	r.JSON(t, &out)
	if r.StatusCode != http.StatusOK || out.SessionsRevoked != 2 {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	for _, tok := range []string{bob.Token, second.Token} {
		if r := s.Do(t, "GET", "/v1/me", tok, nil); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("revoked token: %d", r.StatusCode)
		}
	}
	// The devices stay: bob signs in again as the same device.
	s.Login(t, pk, testutil.LoginOptions{DeviceID: bob.DeviceID})
	if e := lastAudit(t, s, admin, "user.revoke_sessions"); e["detail"].(map[string]any)["sessions_revoked"] != 2.0 {
		t.Fatalf("audit %v", e)
	}
}

func TestAdminRemoveUserFromGroups(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "root", models.RoleAdmin)
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob := s.SeedAccount(t, "bob", models.RoleMember)
	g1, g2 := []byte("g-one"), []byte("g-two")
	createGroup(t, s, alice, g1)
	createGroup(t, s, alice, g2)
	joinGroup(t, s, bob, g1)
	joinGroup(t, s, bob, g2)
	r := s.Do(t, "POST", "/v1/admin/users/"+bob.UserID+"/remove-from-groups", admin.Token, nil)
	var out struct {
		Groups int `json:"groups"`
	}
	r.JSON(t, &out)
	if r.StatusCode != http.StatusOK || out.Groups != 2 {
		t.Fatalf("remove: %d %s", r.StatusCode, r.Body)
	}
	for _, g := range [][]byte{g1, g2} {
		if n := notices(t, s, alice, g); len(n) != 1 || n[0].Reason != "removed_by_admin" || n[0].DeviceID != bob.DeviceID {
			t.Fatalf("notices %+v", n)
		}
		// Routing to bob stopped: he can neither read nor send.
		if r := send(t, s, bob, g, mlstest.PrivateMessage(g, 0, mls.ContentApplication, nil, 50)); r.StatusCode != http.StatusForbidden {
			t.Fatalf("removed member sends: %d", r.StatusCode)
		}
	}
	// Bob himself is still enabled and signed in.
	if r := s.Do(t, "GET", "/v1/me", bob.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("bob's token: %d", r.StatusCode)
	}
	lastAudit(t, s, admin, "user.remove_from_groups")
}

// Deleting a user deletes everything that is theirs and keeps what belongs
// to the groups.
func TestAdminDeleteUser(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminKey := s.RegisterAdmin(t, "root")
	alice := s.SeedAccount(t, "alice", models.RoleMember)
	bob, _ := s.RegisterMember(t, "bob")
	s.UploadKeyPackages(t, bob, 3, true)
	gid := []byte("club")
	createGroup(t, s, alice, gid)
	joinGroup(t, s, bob, gid)
	sent := mustSend(t, s, bob, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 50))

	if r := s.Do(t, "DELETE", "/v1/admin/users/"+admin.UserID, admin.Token, nil); r.StatusCode != http.StatusConflict {
		t.Fatalf("self-delete: %d", r.StatusCode)
	}
	if r := s.Do(t, "DELETE", "/v1/admin/users/"+bob.UserID, admin.Token, nil, "Sovereign-Step-Up",
		s.StepUp(t, admin.Token, adminKey, "delete_user", bob.UserID)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/me", bob.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("deleted user's token: %d", r.StatusCode)
	}
	if r := s.Do(t, "GET", "/v1/admin/users/"+bob.UserID, admin.Token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted user: %d", r.StatusCode)
	}
	if r := s.Do(t, "DELETE", "/v1/admin/users/"+bob.UserID, admin.Token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("delete again: %d", r.StatusCode)
	}
	var left struct{ Users, Devices, Credentials, Sessions, KeyPackages, Members int }
	err := s.Store.ReadDB().NewRaw(`SELECT
  (SELECT count(*) FROM users WHERE id = ?), (SELECT count(*) FROM devices WHERE user_id = ?),
  (SELECT count(*) FROM credentials WHERE user_id = ?), (SELECT count(*) FROM sessions WHERE user_id = ?),
  (SELECT count(*) FROM key_packages WHERE device_id = ?), (SELECT count(*) FROM group_members WHERE device_id = ?)`,
		bob.UserID, bob.UserID, bob.UserID, bob.UserID, bob.DeviceID, bob.DeviceID).Scan(context.Background(),
		&left.Users, &left.Devices, &left.Credentials, &left.Sessions, &left.KeyPackages, &left.Members)
	if err != nil {
		t.Fatal(err)
	}
	if left != (struct{ Users, Devices, Credentials, Sessions, KeyPackages, Members int }{}) {
		t.Fatalf("left behind: %+v", left)
	}
	// The group keeps bob's message and learns to remove his device.
	var kept bool
	for _, e := range history(t, s, alice, gid) {
		kept = kept || e.ID == sent.ID
	}
	if n := notices(t, s, alice, gid); !kept || len(n) != 1 || n[0].Reason != "user_deleted" {
		t.Fatalf("kept message %v, notices %+v", kept, n)
	}
	e := lastAudit(t, s, admin, "user.delete")
	d := e["detail"].(map[string]any)
	if d["username"] != "bob" || d["passkeys"] != 1.0 || d["groups"] != 1.0 || d["devices"] != 1.0 {
		t.Fatalf("audit %v", e)
	}
}

func TestAdminInvites(t *testing.T) {
	s := testutil.NewServer(t)
	admin, _ := s.RegisterAdmin(t, "root")
	r := s.Do(t, "POST", "/v1/admin/invites", admin.Token, map[string]any{"role": "member", "expires_in_hours": 1, "uses": 2})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, r.Body)
	}
	var created struct {
		Invite struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			UsesLeft int    `json:"uses_left"`
		} `json:"invite"`
		Code string `json:"code"`
		Link string `json:"link"`
	}
	r.JSON(t, &created)
	if created.Invite.Status != "active" || created.Invite.UsesLeft != 2 || !strings.HasSuffix(created.Link, "#"+created.Code) {
		t.Fatalf("created %+v", created)
	}
	carol, _ := s.Register(t, created.Code, "carol")
	if carol.Token == "" {
		t.Fatal("no token")
	}
	type list struct {
		Invites []struct {
			ID                string `json:"id"`
			Status            string `json:"status"`
			UsesLeft          int    `json:"uses_left"`
			CreatedByUsername string `json:"created_by_username"`
		} `json:"invites"`
	}
	var l list
	s.Do(t, "GET", "/v1/admin/invites", admin.Token, nil).JSON(t, &l)
	// Newest first: this invite (one use taken), then the first-start admin
	// invite, made by nobody.
	if len(l.Invites) != 2 || l.Invites[0].ID != created.Invite.ID || l.Invites[0].UsesLeft != 1 ||
		l.Invites[0].CreatedByUsername != "root" || l.Invites[1].CreatedByUsername != "" {
		t.Fatalf("active invites %+v", l)
	}
	if r := s.Do(t, "DELETE", "/v1/admin/invites/"+created.Invite.ID, admin.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Body)
	}
	// A revoked invite registers nobody.
	r = s.Do(t, "POST", "/v1/auth/register/begin", "", map[string]any{"invite_code": created.Code, "username": "dave", "display_name": "Dave"})
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("register with revoked invite: %d %s", r.StatusCode, r.Body)
	}
	l = list{}
	s.Do(t, "GET", "/v1/admin/invites", admin.Token, nil).JSON(t, &l)
	for _, i := range l.Invites {
		if i.ID == created.Invite.ID {
			t.Fatalf("revoked invite still listed as usable: %+v", l)
		}
	}
	s.Do(t, "GET", "/v1/admin/invites?all=true", admin.Token, nil).JSON(t, &l)
	statuses := map[string]string{}
	for _, i := range l.Invites {
		statuses[i.ID] = i.Status
	}
	if statuses[created.Invite.ID] != "revoked" || len(l.Invites) < 2 {
		t.Fatalf("all invites %+v", l)
	}
	if r := s.Do(t, "DELETE", "/v1/admin/invites/0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f", admin.Token, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("revoke unknown: %d", r.StatusCode)
	}
	for _, body := range []string{`{"role":"owner"}`, `{"expires_in_hours":0}`, `{"uses":1001}`, `{"expires_in_hours":8761}`} {
		if r := s.Do(t, "POST", "/v1/admin/invites", admin.Token, []byte(body)); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", body, r.StatusCode)
		}
	}
	// The audit log names the invite but never holds its code.
	r = s.Do(t, "GET", "/v1/admin/audit?action=invite.", admin.Token, nil)
	if strings.Contains(string(r.Body), created.Code) || !strings.Contains(string(r.Body), "invite.revoke") || !strings.Contains(string(r.Body), "invite.create") {
		t.Fatalf("audit: %s", r.Body)
	}
}

// Security events from sign-in reach the audit log: registrations, admin
// sign-ins, failed logins and cloned passkeys.
func TestSecurityEventsAreAudited(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminPK := s.RegisterAdmin(t, "root")
	_, pk := s.RegisterMember(t, "bob")
	s.Login(t, adminPK, testutil.LoginOptions{})

	// A passkey from another relying party fails verification.
	stranger := s.NewPasskey()
	stranger.RP.Origin = "https://evil.example"
	stranger.UserHandle = pk.UserHandle
	stranger.Credential = pk.Credential
	stranger.Authenticator = pk.Authenticator
	if r := s.LoginResponse(t, stranger, testutil.LoginOptions{Username: "bob"}); r.StatusCode < 400 {
		t.Fatalf("foreign-origin login: %d", r.StatusCode)
	}
	// A replayed counter is a cloned passkey.
	s.Login(t, pk, testutil.LoginOptions{})
	pk.KeepCounter = true
	if r := s.LoginResponse(t, pk, testutil.LoginOptions{}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cloned passkey login: %d %s", r.StatusCode, r.Body)
	}
	for _, action := range []string{"auth.register", "auth.admin_login", "auth.login_failed", "auth.clone_warning"} {
		e := lastAudit(t, s, admin, action)
		if e["client_ip"] != "127.0.0.1" {
			t.Errorf("%s: %v", action, e)
		}
	}
	if e := lastAudit(t, s, admin, "auth.admin_login"); e["actor"].(map[string]any)["username"] != "root" {
		t.Fatalf("admin login entry %v", e)
	}
	if e := lastAudit(t, s, admin, "auth.login_failed"); e["target_id"] == nil {
		t.Fatalf("failed login names no user: %v", e)
	}
}

// An admin's disable and revoke-sessions close the user's open streams at
// once (not at the next heartbeat), and the dashboard counts open streams.
func TestAdminActionsCloseStreams(t *testing.T) {
	for _, action := range []string{"disable", "revoke-sessions"} {
		t.Run(action, func(t *testing.T) {
			fs := newFeedServer(t, 1, func(c *config.Config) { c.Limits.HeartbeatInterval = 5 * time.Second })
			admin := fs.SeedAccount(t, "root", models.RoleAdmin)
			acc := fs.accs[0]
			sse, _ := openSSE(t, fs.Server, acc.Token, "")
			waitFor(t, func() bool { return fs.App.Hub().Stats().Subscriptions == 1 })
			var st struct {
				OpenStreams *int `json:"open_streams"`
			}
			fs.Do(t, "GET", "/v1/admin/stats", admin.Token, nil).JSON(t, &st)
			if st.OpenStreams == nil || *st.OpenStreams != 1 {
				t.Fatalf("open_streams = %v", st.OpenStreams)
			}
			if r := fs.Do(t, "POST", "/v1/admin/users/"+acc.UserID+"/"+action, admin.Token, nil); r.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", action, r.StatusCode, r.Body)
			}
			select {
			case <-sse.done:
			case <-time.After(time.Second): // well before the 5 s heartbeat
				t.Fatalf("stream still open 1 s after %s", action)
			}
			ended := time.Now()
			waitFor(t, func() bool {
				fs.Do(t, "GET", "/v1/admin/stats", admin.Token, nil).JSON(t, &st)
				return st.OpenStreams != nil && *st.OpenStreams == 0
			})
			t.Logf("open_streams back to 0 %v after the stream ended", time.Since(ended))
		})
	}
}
