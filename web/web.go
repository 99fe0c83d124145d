// Package web serves the front-end that is embedded in the binary: the
// interactive API docs at /docs (Stoplight Elements, installed from npm at
// build time) under a strict Content-Security-Policy. No page loads
// anything from another host.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// docsCSP allows only this origin. Elements sets inline style attributes,
// hence 'unsafe-inline' for styles (never for scripts).
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sovereign API</title>
<link rel="stylesheet" href="/docs/assets/styles.min.css">
<script src="/docs/assets/web-components.min.js"></script>
</head>
<body style="height:100vh;margin:0">
<elements-api apiDescriptionUrl="/openapi.yaml" router="hash" layout="responsive" tryItCredentialsPolicy="same-origin" hideSchemas="false"></elements-api>
</body>
</html>
`

// What /docs and /admin answer (503) when the binary was built without
// its web assets, e.g. by a plain `go build` on a fresh clone.
const (
	docsMissing = "This sovereign binary was built without the API docs renderer.\n\n" +
		"Build it with its assets from a clone of the repository: `make build` (or `make assets`, then `go build ./cmd/sovereign`).\n" +
		"The API description itself is served at /openapi.yaml and /openapi.json.\n"
	adminMissing = "This sovereign binary was built without the admin console.\n\n" +
		"Build it with its assets from a clone of the repository: `make build` (or `make assets`, then `go build ./cmd/sovereign`).\n" +
		"Meanwhile `sovereign invite --admin` makes invites and the admin API (/v1/admin/*) works.\n"
)

// Missing names the pages this binary cannot serve because their assets
// were not built into it ("/docs", "/admin", "/app"); empty for a full build.
func Missing() []string {
	var out []string
	if !DocsAvailable() {
		out = append(out, "/docs")
	}
	if !AdminAvailable() {
		out = append(out, "/admin")
	}
	if !AppAvailable() {
		out = append(out, "/app")
	}
	return out
}

// DocsAvailable reports whether the docs renderer's assets were built into
// the binary (make assets).
func DocsAvailable() bool {
	_, err := fs.Stat(dist, "dist/docs/web-components.min.js")
	return err == nil
}

// DocsHandler serves /docs and /docs/assets/*.
func DocsHandler() http.Handler {
	sub, _ := fs.Sub(dist, "dist/docs")
	assets := http.StripPrefix("/docs/assets/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", docsCSP)
		switch {
		case r.URL.Path == "/docs" || r.URL.Path == "/docs/":
			if !DocsAvailable() {
				http.Error(w, docsMissing, http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write([]byte(docsPage))
		case strings.HasPrefix(r.URL.Path, "/docs/assets/"):
			w.Header().Set("Cache-Control", "public, max-age=3600")
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// adminCSP is the admin UI's policy: scripts, styles and API calls from
// this origin only, no inline code or style, and Trusted Types enforced so
// no page code can turn a string into markup (the UI builds every node
// with createElement and textContent).
const adminCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// AdminAvailable reports whether the admin UI was built into the binary
// (make assets).
func AdminAvailable() bool {
	_, err := fs.Stat(dist, "dist/admin/index.html")
	return err == nil
}

// AdminHandler serves the admin UI: /admin (one page; the views are
// fragments such as /admin#/users) and /admin/assets/*. The UI only calls
// the public admin API, with the session token of a passkey sign-in.
func AdminHandler() http.Handler {
	sub, _ := fs.Sub(dist, "dist/admin")
	assets := http.StripPrefix("/admin/assets/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", adminCSP)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Permissions-Policy", "publickey-credentials-get=(self), publickey-credentials-create=(self), camera=(), microphone=(), geolocation=()")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch {
		case r.URL.Path == "/admin" || r.URL.Path == "/admin/":
			page, err := fs.ReadFile(dist, "dist/admin/index.html")
			if err != nil {
				http.Error(w, adminMissing, http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		case strings.HasPrefix(r.URL.Path, "/admin/assets/") && !strings.HasSuffix(r.URL.Path, "/") &&
			r.URL.Path != "/admin/assets/index.html":
			if strings.HasSuffix(r.URL.Path, ".svg") {
				w.Header().Set("Cache-Control", "public, max-age=86400")
			}
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
