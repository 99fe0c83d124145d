package server

import (
	"net/http"
	"strings"

	"github.com/rs/cors"
)

// corsAllowedHeaders are the request headers a browser app on another
// origin sends: the bearer token, JSON bodies, idempotency keys and the SSE
// resume cursor.
var corsAllowedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "Sovereign-Step-Up"}

// corsExposedHeaders are the response headers such an app must read beyond
// the CORS-safelisted ones.
var corsExposedHeaders = []string{"Retry-After", "Idempotent-Replayed", "Location"}

// withCORS lets browser apps served from the given origins (--cors-origins)
// call the API (/v1/…) and read the spec (/openapi.*): preflight requests
// are answered here (204, cached 10 minutes), actual requests get
// Access-Control-Allow-Origin for an allowed Origin. Credentials are never
// allowed: the session token is an Authorization header, never a cookie,
// so no browser sends it on its own. Other paths (admin UI, docs, invite
// pages) get no CORS headers. No origins: next unchanged.
func withCORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	allowed := make([]string, len(origins))
	for i, o := range origins {
		allowed[i] = strings.TrimSuffix(o, "/") // a browser's Origin has no path
	}
	c := cors.New(cors.Options{
		AllowedOrigins: allowed,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders: corsAllowedHeaders,
		ExposedHeaders: corsExposedHeaders,
		// Never: bearer tokens need no cookies, and allowing credentials
		// would let a listed origin ride on any cookie a proxy might set.
		AllowCredentials: false,
		MaxAge:           600,
	})
	api := c.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if corsPath(r.URL.Path) {
			api.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// corsPath tells the paths other origins may call.
func corsPath(p string) bool {
	return strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/openapi.")
}
