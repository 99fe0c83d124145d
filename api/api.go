// Package api assembles Sovereign's huma.API: metadata, the bearer security
// scheme, the RFC 9457 error model, and every handler. OpenAPI returns the
// document that is committed as openapi.yaml.
package api

import (
	"net/http"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/sovereign-im/sovereign/handlers"
)

// Version is the version of the HTTP API (not of the build).
const Version = "1.0.0"

const description = `Sovereign is a self-hosted, end-to-end encrypted messaging server.
Clients encrypt with MLS (RFC 9420) and sign in with passkeys (WebAuthn);
the server authenticates devices, distributes key packages, orders
handshake messages and delivers ciphertext it cannot read.

Errors are RFC 9457 problem details (application/problem+json) with a
machine-readable ` + "`code`" + `. Protected operations take a session token:
` + "`Authorization: Bearer <token>`" + `.

SDKs for app developers: TypeScript ` + "`@sovereign-im/client`" + ` (browsers, React
Native, Node: passkeys, MLS, the feed) and Go
` + "`github.com/sovereign-im/sovereign/clients/go`" + `, both Apache-2.0.
Getting started, from nothing to a message received:
[/docs/clients.md](/docs/clients.md).`

var installErrorModel sync.Once

// New builds the API on mux and registers every operation.
func New(mux *http.ServeMux, d *handlers.Deps) huma.API {
	// huma.NewError is Huma's documented extension point for the error model
	// and is package state in Huma; it is set once, to a pure function.
	installErrorModel.Do(func() {
		huma.NewError = handlers.NewProblem
	})
	cfg := huma.DefaultConfig("Sovereign API", Version)
	cfg.CreateHooks = nil // no $schema property or Link header in bodies
	cfg.DocsPath = ""     // /docs is served from the binary by the docs package
	cfg.SchemasPath = ""
	cfg.OpenAPIPath = "/openapi"
	cfg.Info.Description = description
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		handlers.SecurityBearer: {
			Type:         "http",
			Scheme:       "bearer",
			BearerFormat: "opaque 256-bit token, base64url",
			Description:  "Session token returned by a passkey ceremony. Stored by the server only as its SHA-256.",
		},
	}
	cfg.Tags = []*huma.Tag{
		{Name: handlers.TagAuth, Description: "Passkey (WebAuthn) ceremonies: registration by invite, login " +
			"by username or discoverable, adding a passkey, logout. Each ceremony is a begin step (options for " +
			"the browser, kept server-side under a ceremony id for 60 s) and a finish step (the browser's " +
			"credential). Rate-limited per client IP."},
		{Name: handlers.TagMe, Description: "Self-service for the signed-in user: profile, sessions, devices " +
			"and passkeys."},
		{Name: handlers.TagSystem, Description: "Health and readiness probes."},
		{Name: handlers.TagAdmin, Description: "Server administration: users, invites, run-time settings, statistics " +
			"and the audit log. Every operation requires the admin role (403 for members, recorded in the audit log) " +
			"and records what it changes in the audit log. With --admin-listen these paths are served only on the " +
			"admin address."},
	}
	a := humago.New(mux, cfg)
	handlers.Register(a, d)
	return a
}

// OpenAPI returns the OpenAPI 3.1 document in YAML, without a database or a
// listener.
func OpenAPI() ([]byte, error) {
	a := New(http.NewServeMux(), &handlers.Deps{})
	return a.OpenAPI().YAML()
}
