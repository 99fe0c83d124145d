package web

import (
	"io/fs"
	"net/http"
	"strings"
)

// appCSP is the member app's policy: everything from this origin only, no
// inline code or style, and Trusted Types enforced. The one policy the app
// may create, sovereign-sw, only lets through the service worker's URL.
// Decrypted photos and voice notes are shown from blob: URLs (img-src,
// media-src); the microphone is allowed for this origin (voice notes).
const appCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; " +
	"manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types sovereign-sw"

// AppAvailable reports whether the member app was built into the binary
// (make assets).
func AppAvailable() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// AppHandler serves the member web app: /app (one page; views are
// fragments such as /app#/c/<id>), /app/sw.js (its service worker, scoped
// to /app/), /app/manifest.webmanifest and /app/assets/*.
func AppHandler() http.Handler {
	sub, _ := fs.Sub(dist, "dist/app/assets")
	assets := http.StripPrefix("/app/assets/", http.FileServer(http.FS(sub)))
	file := func(w http.ResponseWriter, name, contentType string) {
		b, err := fs.ReadFile(dist, "dist/app/"+name)
		if err != nil {
			http.Error(w, "the app was not built into this binary: run `make assets` and rebuild", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", appCSP)
		h.Set("Cache-Control", "no-cache")
		h.Set("Permissions-Policy", "publickey-credentials-get=(self), publickey-credentials-create=(self), camera=(self), microphone=(self), geolocation=()")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch p := r.URL.Path; {
		case p == "/app":
			http.Redirect(w, r, "/app/", http.StatusMovedPermanently)
		case p == "/app/":
			file(w, "index.html", "text/html; charset=utf-8")
		case p == "/app/sw.js":
			file(w, "sw.js", "text/javascript; charset=utf-8")
		case p == "/app/manifest.webmanifest":
			file(w, "manifest.webmanifest", "application/manifest+json")
		case strings.HasPrefix(p, "/app/assets/") && !strings.HasSuffix(p, "/"):
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
