package scaleout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// revocationBound is issue 16's promise: a revocation on one instance
// closes streams on the others within a second.
const revocationBound = time.Second

// TestPostgresRevocationOnAClosesStreamOnB: a user's SSE stream is open on
// B; on A the user ends that session (DELETE /v1/me/sessions/{id}), and
// for a second user an admin disables the account. Each stream on B ends
// within a second of A's answer, and B then refuses the token (401).
func TestPostgresRevocationOnAClosesStreamOnB(t *testing.T) {
	c := newCluster(t, testdb.Fresh(t), 2)
	ctx := context.Background()
	admin := c.register("boss", true, 1)[0]
	users := c.register("rev", false, 2)

	cases := []struct {
		name   string
		user   bench.Account
		revoke func() (int, error)
	}{
		{"end session", users[0], func() (int, error) {
			var me struct {
				Session struct {
					ID string `json:"id"`
				} `json:"session"`
			}
			if _, err := c.cl[0].Do(ctx, "GET", "/v1/me", users[0].Token, nil, &me); err != nil {
				return 0, err
			}
			return c.cl[0].Do(ctx, "DELETE", "/v1/me/sessions/"+me.Session.ID, users[0].Token, nil, nil)
		}},
		{"disable user", users[1], func() (int, error) {
			return c.cl[0].Do(ctx, "POST", "/v1/admin/users/"+users[1].UserID+"/disable", admin.Token, nil, nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := bench.OpenSSE(ctx, c.cl[1], tc.user.Token, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ended := make(chan time.Time, 1)
			go func() {
				_ = readSSE(s, make(chan feedEvent, 1000))
				ended <- time.Now()
			}()
			// The stream is live on B: a request there succeeds.
			if _, err := c.cl[1].Do(ctx, "GET", "/v1/me", tc.user.Token, nil, nil); err != nil {
				t.Fatalf("before the revocation, B: %v", err)
			}
			st, err := tc.revoke()
			acked := time.Now()
			if err != nil || st/100 != 2 {
				t.Fatalf("revoke on A: %d %v", st, err)
			}
			select {
			case at := <-ended:
				took := at.Sub(acked)
				t.Logf("%s on A: stream on B closed %v after A's answer", tc.name, took.Round(time.Microsecond))
				if took > revocationBound {
					t.Errorf("stream on B closed %v after the revocation on A, want within %v", took, revocationBound)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("stream on B still open 10 s after the %s on A", tc.name)
			}
			_, err = c.cl[1].Do(ctx, "GET", "/v1/me", tc.user.Token, nil, nil)
			var se *bench.StatusError
			if !errors.As(err, &se) || se.Status != 401 {
				t.Fatalf("B after the revocation: %v, want 401", err)
			}
		})
	}
}
