package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestProblemsNeverEchoInputOrConfiguration is finding 11 of issue 19 (the
// handler half; HSTS is server.TestHSTSWithTLS): a 422 echoed the whole
// invalid value (1 MB in, 1 MB out) and the wrong-origin error quoted the
// configured origins.
func TestProblemsNeverEchoInputOrConfiguration(t *testing.T) {
	s := testutil.NewServer(t)
	big := strings.Repeat("x", 900_000)
	for _, body := range []map[string]any{
		{"invite_code": "a", "username": "alice", "display_name": big},
		{"invite_code": "a", "username": big[:5000], "display_name": "A"},
	} {
		r := s.Do(t, "POST", "/v1/auth/register/begin", "", body)
		if r.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("status %d", r.StatusCode)
		}
		if len(r.Body) > 4096 || strings.Contains(string(r.Body), strings.Repeat("x", 100)) {
			t.Fatalf("a %d-byte problem repeats the input: %.300s", len(r.Body), r.Body)
		}
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
	}

	// A passkey made on a phishing site: the answer says the origin is
	// wrong, not which origins the server expects.
	phish := s.NewPasskey()
	phish.RP.Origin = "https://evil.example"
	c := s.Begin(t, "/v1/auth/register/begin", "", registerBody(s.Invite(t, models.RoleMember), "alice"))
	r := finishRegister(t, s, c, phish.Create(t, c.Options))
	expectProblem(t, r, http.StatusForbidden, "verification_failed")
	for _, o := range append([]string{s.Config.RPID}, s.Config.RPOrigins...) {
		if strings.Contains(string(r.Body), o) {
			t.Fatalf("the problem quotes the configuration (%s): %s", o, r.Body)
		}
	}
	if strings.Contains(string(r.Body), "evil.example") {
		t.Fatalf("the problem quotes the client's data: %s", r.Body)
	}
}
