package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// passkeyNotices returns the passkey notices in a device's feed.
func passkeyNotices(t *testing.T, s *testutil.Server, token string) []models.PasskeyNotice {
	t.Helper()
	var page struct {
		Events []struct {
			Kind    string `json:"kind"`
			Payload string `json:"payload"`
		} `json:"events"`
	}
	s.Do(t, "GET", "/v1/sync?after=0&timeout=0", token, nil).JSON(t, &page)
	var out []models.PasskeyNotice
	for _, e := range page.Events {
		if e.Kind != "notice" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(e.Payload)
		if err != nil {
			t.Fatalf("notice payload: %v", err)
		}
		var n models.PasskeyNotice
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		if n.Type == models.NoticePasskeyAdded || n.Type == models.NoticePasskeyRemoved {
			out = append(out, n)
		}
	}
	return out
}

func auditCount(t *testing.T, s *testutil.Server, action, targetID string) int {
	t.Helper()
	var n int
	if err := s.Store.ReadDB().NewRaw(`SELECT count(*) FROM audit_log WHERE action = ? AND target_id = ?`, action, targetID).Scan(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStolenTokenCannotTakeOverAccount is finding 1 of issue 19: with only
// the victim's session token, an attacker added their own passkey, then
// deleted the victim's. Now every account change needs a fresh assertion by
// an existing passkey of the account, made for that change.
func TestStolenTokenCannotTakeOverAccount(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	laptop := s.Login(t, pk, testutil.LoginOptions{DeviceName: "laptop"})
	stolen := laptop.Token // all the attacker has
	attackerKey := s.NewPasskey()

	// The reproduction: add-passkey with the token alone. The begin step
	// answers (the step-up header is optional since passkey approval), but
	// the finish needs the approval of one of alice's passkeys, which the
	// attacker cannot make: neither without one, nor with the new passkey
	// itself.
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/begin", stolen, nil, store.StepUpHeader, "forged"), http.StatusForbidden, "step_up_required")
	ac := s.Begin(t, "/v1/auth/add-passkey/begin", stolen, nil)
	cred := attackerKey.Create(t, ac.Options)
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/finish", stolen, map[string]any{"ceremony_id": ac.CeremonyID, "credential": cred}),
		http.StatusForbidden, "approval_required")
	if r := s.AddPasskeyResponse(t, stolen, attackerKey, attackerKey); r.StatusCode != http.StatusForbidden {
		t.Fatalf("add-passkey approved by the new passkey itself = %d %s", r.StatusCode, r.Body)
	}
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/passkeys/"+alice.PasskeyID, stolen, nil), http.StatusForbidden, "step_up_required")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/sessions", stolen, nil), http.StatusForbidden, "step_up_required")

	// The step-up itself needs one of alice's passkeys: the attacker's own
	// is refused.
	c := s.Begin(t, "/v1/auth/step-up/begin", stolen, map[string]any{"operation": "add_passkey"})
	r := s.Do(t, "POST", "/v1/auth/step-up/finish", stolen, map[string]any{"ceremony_id": c.CeremonyID, "credential": attackerKey.Assert(t, c.Options)})
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("step-up with a foreign passkey = %d %s", r.StatusCode, r.Body)
	}

	// Grants are bound to the operation, the target, the session, and are
	// single use and short-lived.
	g := s.StepUp(t, alice.Token, pk, "delete_passkey", alice.PasskeyID)
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/begin", alice.Token, nil, store.StepUpHeader, g), http.StatusForbidden, "step_up_required")
	expectProblem(t, s.Do(t, "DELETE", "/v1/me/passkeys/"+alice.PasskeyID, alice.Token, nil, store.StepUpHeader, g), http.StatusForbidden, "step_up_required")
	g = s.StepUp(t, alice.Token, pk, "add_passkey", "")
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/begin", stolen, nil, store.StepUpHeader, g), http.StatusForbidden, "step_up_required")
	g = s.StepUp(t, alice.Token, pk, "add_passkey", "")
	s.Clock.Advance(61 * time.Second)
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/begin", alice.Token, nil, store.StepUpHeader, g), http.StatusForbidden, "step_up_required")
	g = s.StepUp(t, alice.Token, pk, "add_passkey", "")
	if r := s.Do(t, "POST", "/v1/auth/add-passkey/begin", alice.Token, nil, store.StepUpHeader, g); r.StatusCode != http.StatusOK {
		t.Fatalf("add-passkey begin with a grant = %d %s", r.StatusCode, r.Body)
	}
	expectProblem(t, s.Do(t, "POST", "/v1/auth/add-passkey/begin", alice.Token, nil, store.StepUpHeader, g), http.StatusForbidden, "step_up_required")

	// Nothing the attacker tried changed anything.
	var list struct {
		Passkeys []struct {
			ID string `json:"id"`
		} `json:"passkeys"`
	}
	s.Do(t, "GET", "/v1/me/passkeys", alice.Token, nil).JSON(t, &list)
	if len(list.Passkeys) != 1 {
		t.Fatalf("passkeys %+v", list)
	}
	if r := s.LoginResponse(t, attackerKey, testutil.LoginOptions{}); r.StatusCode == http.StatusOK {
		t.Fatal("the attacker's passkey signs in")
	}
}

// TestPasskeyChangesAuditedAndAnnounced: every passkey added or removed is
// in the audit log and in the feed of every device of the user; ending the
// other sessions can remove the passkeys added after a time, except the
// one that made the step-up.
func TestPasskeyChangesAuditedAndAnnounced(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	laptop := s.Login(t, pk, testutil.LoginOptions{DeviceName: "laptop"})
	s.Clock.Advance(time.Hour)
	cutoff := s.Clock.Now()
	s.Clock.Advance(time.Minute)

	// A passkey added behind alice's back (say, on the laptop while she
	// was away): both devices hear of it, and it is audited.
	intruder, intruderID := s.AddPasskey(t, laptop.Token, pk)
	for _, tok := range []string{alice.Token, laptop.Token} {
		ns := passkeyNotices(t, s, tok)
		if len(ns) != 1 || ns[0].Type != models.NoticePasskeyAdded || ns[0].PasskeyID != intruderID || ns[0].ByDeviceID != laptop.DeviceID {
			t.Fatalf("notices %+v", ns)
		}
	}
	if auditCount(t, s, models.AuditPasskeyAdded, intruderID) != 1 {
		t.Fatal("passkey.add not audited")
	}
	intruderSession := s.Login(t, intruder, testutil.LoginOptions{DeviceName: "intruder"})

	// From her phone alice ends every other session and removes the
	// passkeys added since the cutoff.
	g := s.StepUp(t, alice.Token, pk, "end_other_sessions", "")
	var out struct {
		Ended           int `json:"ended"`
		PasskeysRemoved int `json:"passkeys_removed"`
	}
	r := s.Do(t, "DELETE", "/v1/me/sessions?remove_passkeys_added_after="+url.QueryEscape(cutoff.Format(time.RFC3339)), alice.Token, nil, store.StepUpHeader, g)
	r.JSON(t, &out)
	if r.StatusCode != http.StatusOK || out.Ended != 2 || out.PasskeysRemoved != 1 {
		t.Fatalf("end others = %d %s", r.StatusCode, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/me", intruderSession.Token, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("intruder session = %d", r.StatusCode)
	}
	if r := s.LoginResponse(t, intruder, testutil.LoginOptions{}); r.StatusCode == http.StatusOK {
		t.Fatal("the removed passkey still signs in")
	}
	s.Login(t, pk, testutil.LoginOptions{DeviceID: alice.DeviceID}) // alice's own passkey stays
	ns := passkeyNotices(t, s, alice.Token)
	if len(ns) != 2 || ns[1].Type != models.NoticePasskeyRemoved || ns[1].PasskeyID != intruderID || ns[1].Reason != "ended_sessions" {
		t.Fatalf("notices after removal %+v", ns)
	}
	if auditCount(t, s, models.AuditPasskeyRemoved, intruderID) != 1 || auditCount(t, s, models.AuditSessionsEnded, alice.UserID) != 1 {
		t.Fatal("removal or ending not audited")
	}

	// Deleting a passkey is audited and announced too.
	second, secondID := s.AddPasskey(t, alice.Token, pk)
	if r := s.DeletePasskey(t, alice.Token, second, alice.PasskeyID); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d %s", r.StatusCode, r.Body)
	}
	if auditCount(t, s, models.AuditPasskeyRemoved, alice.PasskeyID) != 1 {
		t.Fatal("passkey.remove not audited")
	}
	ns = passkeyNotices(t, s, alice.Token)
	if last := ns[len(ns)-1]; last.Type != models.NoticePasskeyRemoved || last.PasskeyID != alice.PasskeyID || last.Reason != "deleted" {
		t.Fatalf("notices %+v (added %s)", ns, secondID)
	}
}

// TestAdminRecoveryInvite: an admin's recovery invite lets the user
// register a new passkey on a clean device; the old passkeys and every
// session end, as the threat model's recovery steps ask.
func TestAdminRecoveryInvite(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminKey := s.RegisterAdmin(t, "root")
	alice, oldKey := s.RegisterMember(t, "alice")
	thief := s.Login(t, oldKey, testutil.LoginOptions{DeviceName: "stolen phone"})

	var inv struct {
		Code string `json:"code"`
		Link string `json:"link"`
	}
	r := s.Do(t, "POST", "/v1/admin/users/"+alice.UserID+"/recovery-invite", admin.Token, map[string]any{},
		"Sovereign-Step-Up", s.StepUp(t, admin.Token, adminKey, "recovery_invite", alice.UserID))
	r.JSON(t, &inv)
	if r.StatusCode != http.StatusCreated || inv.Code == "" {
		t.Fatalf("recovery invite = %d %s", r.StatusCode, r.Body)
	}
	expectProblem(t, s.Do(t, "POST", "/v1/admin/users/"+alice.UserID+"/recovery-invite", alice.Token, map[string]any{}), http.StatusForbidden, "admin_required")

	// It is no registration invite, and a registration invite recovers nothing.
	expectProblem(t, s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(inv.Code, "mallory")), http.StatusForbidden, "invite_invalid")
	expectProblem(t, s.Do(t, "POST", "/v1/auth/recover/begin", "", map[string]any{"invite_code": s.Invite(t, models.RoleMember)}), http.StatusForbidden, "invite_invalid")

	clean := s.NewPasskey()
	c := s.Begin(t, "/v1/auth/recover/begin", "", map[string]any{"invite_code": inv.Code})
	r = s.Do(t, "POST", "/v1/auth/recover/finish", "", map[string]any{"ceremony_id": c.CeremonyID,
		"credential": clean.Create(t, c.Options), "device_name": "new phone"})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("recover = %d %s", r.StatusCode, r.Body)
	}
	var g testutil.Grant
	r.JSON(t, &g)
	if g.UserID != alice.UserID {
		t.Fatalf("recovered %s, want %s", g.UserID, alice.UserID)
	}
	for _, tok := range []string{alice.Token, thief.Token} {
		if r := s.Do(t, "GET", "/v1/me", tok, nil); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("old session after recovery = %d", r.StatusCode)
		}
	}
	if r := s.LoginResponse(t, oldKey, testutil.LoginOptions{}); r.StatusCode == http.StatusOK {
		t.Fatal("the old passkey still signs in")
	}
	again := s.Login(t, clean, testutil.LoginOptions{Username: "alice"})
	if again.UserID != alice.UserID {
		t.Fatal("new passkey signs in as someone else")
	}
	// Single use.
	expectProblem(t, s.Do(t, "POST", "/v1/auth/recover/begin", "", map[string]any{"invite_code": inv.Code}), http.StatusForbidden, "invite_invalid")
	if auditCount(t, s, models.AuditUserRecovered, alice.UserID) != 1 || auditCount(t, s, models.AuditRecoveryInvite, alice.UserID) != 1 ||
		auditCount(t, s, models.AuditPasskeyRemoved, alice.PasskeyID) != 1 {
		t.Fatal("recovery not audited")
	}
}
