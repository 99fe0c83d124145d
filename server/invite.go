package server

import (
	"net/http"
)

// inviteRouter answers an invite link (/invite#<code>) with a redirect to
// where that invite registers: the member app (/app/) for member invites,
// the admin console (/admin/) for admin invites, whose links carry
// ?role=admin (config.InviteLinkFor). The code stays in the fragment, which
// the browser never sends; a redirect without a fragment keeps the
// request's (RFC 9110 §10.2.2), so the page opens as /app/#<code> or
// /admin/#<code> and shows registration with the code filled in. When
// adminOnly is set (the separate --admin-listen address) every invite
// opens the console; on the public address of such a server, where the
// console is not served, every invite opens the app.
func inviteRouter(adminHere, adminOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		target := "/app/"
		if adminOnly || (adminHere && r.URL.Query().Get("role") == "admin") {
			target = "/admin/"
		}
		http.Redirect(w, r, target, http.StatusFound)
	}
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
