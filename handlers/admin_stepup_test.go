package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// adminStepUpOp is one admin operation that needs the admin's step-up.
type adminStepUpOp struct {
	name      string // step-up operation
	target    string // user id the grant is bound to ("" for admin_invite)
	other     string // another user id, for a grant made for someone else
	otherKind string // another operation, for a grant made for something else
	do        func(grant string) *testutil.Response
	wantDone  int // status of the accepted request
}

// TestStolenAdminTokenCannotTakeOverAccounts: with only an admin's bearer
// token (no fresh assertion by the admin's own passkey) an attacker cannot
// reset a user's passkeys (recovery invite), mint admins (admin invite) or
// delete a user. Each needs a step-up grant made by this admin session for
// that operation and that user, single use; refusals are audited.
func TestStolenAdminTokenCannotTakeOverAccounts(t *testing.T) {
	s := testutil.NewServer(t)
	admin, adminKey := s.RegisterAdmin(t, "root")
	other, otherKey := s.RegisterAdmin(t, "root2")
	alice, _ := s.RegisterMember(t, "alice")
	bob, _ := s.RegisterMember(t, "bob")
	carol, carolKey := s.RegisterMember(t, "carol")

	const header = "Sovereign-Step-Up"
	ops := []adminStepUpOp{
		{name: "recovery_invite", target: alice.UserID, other: bob.UserID, otherKind: "delete_user", wantDone: http.StatusCreated,
			do: func(g string) *testutil.Response {
				return s.Do(t, "POST", "/v1/admin/users/"+alice.UserID+"/recovery-invite", admin.Token, map[string]any{}, header, g)
			}},
		{name: "admin_invite", otherKind: "recovery_invite", wantDone: http.StatusCreated,
			do: func(g string) *testutil.Response {
				return s.Do(t, "POST", "/v1/admin/invites", admin.Token, map[string]any{"role": "admin", "expires_in_hours": 1, "uses": 1}, header, g)
			}},
		{name: "delete_user", target: alice.UserID, other: bob.UserID, otherKind: "recovery_invite", wantDone: http.StatusNoContent,
			do: func(g string) *testutil.Response {
				return s.Do(t, "DELETE", "/v1/admin/users/"+alice.UserID, admin.Token, nil, header, g)
			}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			// The bearer token alone.
			expectProblem(t, op.do(""), http.StatusForbidden, "step_up_required")
			expectProblem(t, op.do("not-a-grant"), http.StatusForbidden, "step_up_required")
			// A grant for another operation.
			otherTarget := op.target
			if otherTarget == "" {
				otherTarget = alice.UserID
			}
			expectProblem(t, op.do(s.StepUp(t, admin.Token, adminKey, op.otherKind, otherTarget)), http.StatusForbidden, "step_up_required")
			// A member's own step-ups are of no use either.
			expectProblem(t, op.do(s.StepUp(t, carol.Token, carolKey, "delete_account", "")), http.StatusForbidden, "step_up_required")
			// A grant for another user.
			if op.other != "" {
				expectProblem(t, op.do(s.StepUp(t, admin.Token, adminKey, op.name, op.other)), http.StatusForbidden, "step_up_required")
			}
			// Another admin's grant (another session) for the same thing.
			expectProblem(t, op.do(s.StepUp(t, other.Token, otherKey, op.name, op.target)), http.StatusForbidden, "step_up_required")
			// The right one, once.
			grant := s.StepUp(t, admin.Token, adminKey, op.name, op.target)
			if r := op.do(grant); r.StatusCode != op.wantDone {
				t.Fatalf("with the grant: %d %s", r.StatusCode, r.Body)
			}
			if op.name == "delete_user" {
				return // alice is gone: a second try answers 404 before any grant is looked at
			}
			expectProblem(t, op.do(grant), http.StatusForbidden, "step_up_required")
		})
	}

	// A member cannot even begin an admin step-up.
	for _, op := range []string{"recovery_invite", "admin_invite", "delete_user"} {
		body := map[string]any{"operation": op}
		if op != "admin_invite" {
			body["user_id"] = bob.UserID
		}
		expectProblem(t, s.Do(t, "POST", "/v1/auth/step-up/begin", carol.Token, body), http.StatusForbidden, "admin_required")
	}
	// The grant names what it is bound to.
	expectProblem(t, s.Do(t, "POST", "/v1/auth/step-up/begin", admin.Token, map[string]any{"operation": "delete_user"}),
		http.StatusUnprocessableEntity, "user_id_required")
	expectProblem(t, s.Do(t, "POST", "/v1/auth/step-up/begin", admin.Token, map[string]any{"operation": "admin_invite", "user_id": bob.UserID}),
		http.StatusUnprocessableEntity, "unexpected_user_id")
	expectProblem(t, s.Do(t, "POST", "/v1/auth/step-up/begin", admin.Token, map[string]any{"operation": "recovery_invite", "passkey_id": bob.UserID, "user_id": bob.UserID}),
		http.StatusUnprocessableEntity, "unexpected_passkey_id")

	// A member invite needs no step-up.
	if r := s.Do(t, "POST", "/v1/admin/invites", admin.Token, map[string]any{"role": "member", "expires_in_hours": 1, "uses": 1}); r.StatusCode != http.StatusCreated {
		t.Fatalf("member invite: %d %s", r.StatusCode, r.Body)
	}

	// The actions name the passkey that stepped up; the refusals are in the
	// log, one entry per admin per minute with a count per operation.
	for _, a := range []struct{ action, target string }{{models.AuditRecoveryInvite, alice.UserID}, {models.AuditUserDelete, alice.UserID}} {
		var detail string
		if err := s.Store.ReadDB().NewRaw(`SELECT detail FROM audit_log WHERE action = ? AND target_id = ?`, a.action, a.target).
			Scan(t.Context(), &detail); err != nil {
			t.Fatalf("%s: %v", a.action, err)
		}
		if !strings.Contains(detail, `"step_up_passkey_id":"`+admin.PasskeyID+`"`) {
			t.Fatalf("%s detail %s", a.action, detail)
		}
	}
	// Summed over the entries, in case the test crossed a minute.
	var rows []string
	if err := s.Store.ReadDB().NewRaw(`SELECT detail FROM audit_log WHERE action = ? AND actor_user_id = ?`, models.AuditStepUpDenied, admin.UserID).
		Scan(t.Context(), &rows); err != nil {
		t.Fatal(err)
	}
	by := map[string]float64{}
	for _, raw := range rows {
		var d struct {
			By map[string]float64 `json:"by_operation"`
		}
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		for k, v := range d.By {
			by[k] += v
		}
	}
	if by["recovery_invite"] != 7 || by["admin_invite"] != 6 || by["delete_user"] != 6 {
		t.Fatalf("step-up denials audited as %v (%d rows)", by, len(rows))
	}
	lastAudit(t, s, admin, models.AuditStepUpDenied)
}
