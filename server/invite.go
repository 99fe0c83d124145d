package server

import (
	"net/http"
)

// inviteRedirect answers an invite link (/invite#<code>) where the admin UI
// is served: a redirect to /admin/. The code stays in the fragment, which
// the browser never sends; a redirect without a fragment keeps the
// request's (RFC 9110 §10.2.2), so the UI opens as /admin/#<code> and shows
// registration with the code filled in.
func inviteRedirect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/admin/", http.StatusFound)
}

// invitePageHTML is what the public listener shows for an invite link when
// the admin UI lives on a separate --admin-listen address: members register
// in a Sovereign app. Plain HTML, no script or style (the CSP allows none).
const invitePageHTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sovereign invite</title></head>
<body>
<h1>You are invited to a Sovereign server</h1>
<p>Open a Sovereign app, choose to register on this server, and enter the
invite code: it is the part of this page's address after the <code>#</code>.</p>
<p>The code was never sent to the server: browsers keep what follows
<code>#</code> to themselves.</p>
</body>
</html>
`

// invitePage serves invitePageHTML (see there).
func invitePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(invitePageHTML))
}

// withInvite serves /invite with h before handing every other path to next.
func withInvite(h http.HandlerFunc, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/invite" {
			h(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
