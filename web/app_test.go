package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The member app is served from the binary under its strict policy: every
// file with its type, the service worker at the scope's root, nothing else.
func TestAppHandler(t *testing.T) {
	if !AppAvailable() {
		t.Fatal("the app is not built into the binary: run make assets")
	}
	h := AppHandler()
	get := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	for path, ctype := range map[string]string{
		"/app/":                     "text/html",
		"/app/sw.js":                "text/javascript",
		"/app/manifest.webmanifest": "application/manifest+json",
		"/app/assets/app.js":        "text/javascript",
		"/app/assets/app.css":       "text/css",
		"/app/assets/icon-192.png":  "image/png",
		"/app/assets/icon-512.png":  "image/png",
		"/app/assets/icon.svg":      "image/svg+xml",
	} {
		rec := get("GET", path)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) {
			t.Errorf("GET %s = %d %q, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), ctype)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "require-trusted-types-for 'script'", "trusted-types sovereign-sw", "frame-ancestors 'none'", "media-src 'self' blob:;"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows unsafe sources", path, csp)
		}
	}
	if rec := get("GET", "/app"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/app/" {
		t.Errorf("GET /app = %d %q, want a redirect to /app/", rec.Code, rec.Header().Get("Location"))
	}
	for _, path := range []string{"/app/assets/", "/app/nothing", "/app/index.html"} {
		if rec := get("GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
	}
	if rec := get("POST", "/app/"); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /app/ = %d Allow %q, want 405", rec.Code, rec.Header().Get("Allow"))
	}
	page := get("GET", "/app/").Body.String()
	for _, want := range []string{`<link rel="manifest" href="/app/manifest.webmanifest">`, `src="/app/assets/app.js"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
		t.Error("the page has inline script or style")
	}
}
