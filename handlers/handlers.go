// Package handlers is Sovereign's HTTP edge: one file per resource with typed
// input and output structs, authentication and authorisation checks, and the
// single mapping from domain errors to RFC 9457 problems. It holds no SQL and
// parses no MLS bytes itself.
package handlers

import (
	"context"
	"log/slog"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/sovereign-im/sovereign/blobstore"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/geoip"
	"github.com/sovereign-im/sovereign/metrics"
	"github.com/sovereign-im/sovereign/ratelimit"
	"github.com/sovereign-im/sovereign/realtime"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
)

// Deps are what handlers need. Register reads only its static parts, so
// the OpenAPI document can be built with a zero Deps (no database).
type Deps struct {
	Store  *store.Store
	Config config.Config
	Log    *slog.Logger
	Now    func() time.Time
	// WebAuthn is the relying party (built from config by the server).
	WebAuthn *webauthn.WebAuthn
	// Stopping is cancelled when the server begins to shut down; long-lived
	// streams end when it is.
	Stopping context.Context
	// Settings are the run-time settings (configuration plus an admin's
	// overrides); nil only while building the OpenAPI document.
	Settings *settings.Live
	// Hub fans committed events out to open streams.
	Hub *realtime.Hub
	// Streams bounds concurrent streams per client IP and in all.
	Streams *realtime.StreamLimiter
	// Metrics is the server's metrics registry; nil registers nowhere.
	// Add a metric in one line: d.Metrics.Counter("x_total", "help", "label").
	Metrics *metrics.Registry
	// Push is nil when push is off (--push=false, or the OpenAPI build).
	Push *PushDeps
	// Blobs stores attachment bytes; nil only while building the OpenAPI
	// document.
	Blobs blobstore.Blobs
	// GeoIP locates a new device's sign-in for its new_device notice
	// (country and city); nil without --geoip-db, the default.
	GeoIP geoip.Locator
}

// Tags group operations in the OpenAPI document.
const (
	TagSystem = "system"
	TagAdmin  = "admin"
)

// SecurityBearer is the name of the bearer-token security scheme.
const SecurityBearer = "bearer"

// bearer is the security requirement of every protected operation.
var bearer = []map[string][]string{{SecurityBearer: {}}}

// public marks an operation that needs no authentication (an empty
// requirement), so the document says so explicitly.
var public = []map[string][]string{{}}

// Register adds every operation to api.
func Register(api huma.API, d *Deps) {
	h := &handler{d: d, m: newHandlerMetrics(d.Metrics)}
	h.authLimit = ratelimit.New(d.Config.Limits.AuthRequestsPerMin, d.Config.Limits.AuthBurst, h.now)
	h.followSetting(func(v settings.Values) { h.authLimit.SetRate(v.AuthPerMinute, v.AuthBurst) })
	h.limitBodies(api)
	api.UseMiddleware(nameOperation)
	api.UseMiddleware(h.authenticate(api))
	api.UseMiddleware(h.refuseUnsafeParameters(api))
	h.registerSystem(api)
	h.registerAuth(api)
	h.registerAddPasskey(api)
	h.registerBinding(api)
	h.registerStepUp(api)
	h.registerMe(api)
	h.registerPush(api)
	h.registerDirectory(api)
	h.registerSync(api)
	h.registerKeyPackages(api)
	h.registerGroups(api)
	h.registerPeople(api)
	h.registerAttachments(api)
	h.registerAdmin(api)
	h.registerAdminUsers(api)
	h.registerRecoveryAdmin(api)
}

// handler carries the dependencies to each operation.
type handler struct {
	d *Deps
	// sendLimiter holds each user's message budget (--messages-per-minute).
	sendLimiter *ratelimit.Limiter
	// groupLimiter holds each user's group-creation budget
	// (--groups-per-hour).
	groupLimiter *ratelimit.Limiter
	// authLimit limits ceremony requests per client IP.
	authLimit *ratelimit.Limiter
	// acks bounds ack writes per device (handlers/acks.go).
	acks *ackGate
	// m are the edge's metrics.
	m *handlerMetrics
	// parked holds the detached SSE streams (sse_parked.go).
	parked *parkedSet
}

func (h *handler) now() time.Time {
	if h.d.Now != nil {
		return h.d.Now()
	}
	return time.Now()
}

func (h *handler) log() *slog.Logger {
	if h.d.Log != nil {
		return h.d.Log
	}
	return slog.Default()
}
