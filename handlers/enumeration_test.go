package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// shapeOf is what an answer's form says: status, the JSON keys at the top
// and in options, and each allowed credential's id length and transports.
func shapeOf(t *testing.T, status int, body []byte) string {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer %d %s: %v", status, body, err)
	}
	var opts map[string]json.RawMessage
	_ = json.Unmarshal(top["options"], &opts)
	keys := func(m map[string]json.RawMessage) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	var u struct {
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	}
	_ = json.Unmarshal(opts["user"], &u)
	return fmt.Sprintf("%d %v %v user=%v", status, keys(top), keys(opts), u.Name != "")
}

// TestUsernameEnumeration is finding 6 of issue 19: registration answered
// 409 username_taken at its begin step, and the login decoy always had
// exactly one 32-byte credential with transports [internal, hybrid]; a
// known name answered slower than an unknown one. Now register/begin
// answers a taken and a free name alike, decoys take the shapes of real
// authenticators' credentials, and the times of known and unknown names
// agree within noise (medians of interleaved requests, logged).
func TestUsernameEnumeration(t *testing.T) {
	s := testutil.NewServer(t)
	s.RegisterMember(t, "alice")

	// Registration: same status and shape for a taken and a free name.
	code := s.Invite(t, models.RoleMember)
	taken := s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(code, "ALICE"))
	free := s.Do(t, "POST", "/v1/auth/register/begin", "", registerBody(code, "zed"))
	if a, b := shapeOf(t, taken.StatusCode, taken.Body), shapeOf(t, free.StatusCode, free.Body); a != b || taken.StatusCode != http.StatusOK {
		t.Fatalf("register/begin: taken %s, free %s", a, b)
	}

	// Login decoys: several shapes, each one a real authenticator's.
	shapes := map[string]int{}
	counts := map[int]int{}
	for i := 0; i < 120; i++ {
		r := s.Do(t, "POST", "/v1/auth/login/begin", "", map[string]any{"username": fmt.Sprintf("nobody%d", i)})
		var o struct {
			Options struct {
				AllowCredentials []struct {
					ID         string   `json:"id"`
					Transports []string `json:"transports"`
				} `json:"allowCredentials"`
			} `json:"options"`
		}
		r.JSON(t, &o)
		counts[len(o.Options.AllowCredentials)]++
		for _, c := range o.Options.AllowCredentials {
			shapes[fmt.Sprintf("%d %v", len(c.ID), c.Transports)]++
		}
	}
	if len(shapes) < 4 || counts[1] == 0 || counts[2] == 0 {
		t.Fatalf("decoys all look alike: shapes %v, counts %v", shapes, counts)
	}
	t.Logf("decoy shapes over 120 unknown names: %v; credentials per answer: %v", shapes, counts)

	// Timing: interleave known and unknown names and compare medians.
	// Under a loaded machine single samples are noise; medians of many
	// interleaved ones are not. Up to three rounds.
	measure := func(path string, body func(known bool, i int) any) (known, unknown time.Duration) {
		var k, u []time.Duration
		for i := 0; i < 80; i++ {
			for _, isKnown := range []bool{i%2 == 0, i%2 != 0} {
				raw, _ := json.Marshal(body(isKnown, i))
				req, _ := http.NewRequest("POST", s.URL+path, bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(start)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s = %d", path, resp.StatusCode)
				}
				if isKnown {
					k = append(k, d)
				} else {
					u = append(u, d)
				}
			}
		}
		slices.Sort(k)
		slices.Sort(u)
		return k[len(k)/2], u[len(u)/2]
	}
	close := func(a, b time.Duration) bool {
		diff := a - b
		if diff < 0 {
			diff = -diff
		}
		return diff <= max(a, b)/5 || diff <= 300*time.Microsecond
	}
	codes := s.Invite(t, models.RoleMember)
	for _, tc := range []struct {
		name string
		path string
		body func(known bool, i int) any
	}{
		{"login/begin", "/v1/auth/login/begin", func(known bool, i int) any {
			if known {
				return map[string]any{"username": "alice"}
			}
			return map[string]any{"username": fmt.Sprintf("ghost%d", i)}
		}},
		{"register/begin", "/v1/auth/register/begin", func(known bool, i int) any {
			if known {
				return registerBody(codes, "alice")
			}
			return registerBody(codes, fmt.Sprintf("ghost%d", i))
		}},
	} {
		ok := false
		for round := 0; round < 3 && !ok; round++ {
			k, u := measure(tc.path, tc.body)
			t.Logf("%s medians: known %v, unknown %v (round %d)", tc.name, k, u, round+1)
			ok = close(k, u)
		}
		if !ok {
			t.Errorf("%s: known and unknown usernames take different times", tc.name)
		}
	}
}
