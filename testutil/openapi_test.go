package testutil

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestValidatingTransportCatchesWhatTheWalkReliesOn: the contract walk
// (handlers.TestContractHoldsUnderHostileInput) sends paths as written
// (URL.Opaque, with Path set for matching) and trusts ValidatingTransport
// to refuse a body unlike the schema and a status the operation does not
// list.
func TestValidatingTransportCatchesWhatTheWalkReliesOn(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		bad    bool
	}{
		{"a documented problem", 401, `{"status":401,"title":"Unauthorized","code":"unauthenticated"}`, false},
		{"a problem with a field of the wrong type", 401, `{"status":"401","code":7}`, true},
		{"a status getMe does not list", 418, `{"status":418,"code":"teapot"}`, true},
	} {
		rec := &recorder{TB: t}
		vt := &ValidatingTransport{T: rec, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {"application/problem+json"}},
				Body: io.NopCloser(strings.NewReader(c.body)), Request: r}, nil
		})}
		req, _ := http.NewRequest("GET", "http://127.0.0.1/", nil)
		req.URL.Opaque, req.URL.Path = "/v1/me", "/v1/me"
		if _, err := vt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got := len(rec.errs) > 0; got != c.bad {
			t.Errorf("%s: refused %v, want %v: %v", c.name, got, c.bad, rec.errs)
		}
	}
}
