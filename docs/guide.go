// Package docs embeds the guides the server serves next to its API
// reference: the client SDKs' getting-started (clients.md) at
// /docs/clients.md, linked from the API description that /docs renders.
package docs

import (
	_ "embed"
	"net/http"
)

//go:embed clients.md
var clientsGuide []byte

// ClientsGuidePath is where the server serves the SDK guide.
const ClientsGuidePath = "/docs/clients.md"

// ClientsGuide serves docs/clients.md as UTF-8 plain text (Markdown reads
// well as is, and plain text needs no renderer and no script).
func ClientsGuide() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(clientsGuide)
	})
}
