package handlers_test

import (
	"net/http"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

func TestHealthAndReadiness(t *testing.T) {
	s := testutil.NewServer(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		r := s.Do(t, "GET", p, "", nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d %s", p, r.StatusCode, r.Body)
		}
	}
}

func TestUnknownRouteIsProblem(t *testing.T) {
	s := testutil.NewServer(t)
	r := s.Do(t, "GET", "/v1/nope", "", nil)
	if r.StatusCode != http.StatusNotFound || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d, type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := testutil.NewServer(t)
	r := s.Do(t, "GET", "/healthz", "", nil)
	for h, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}
