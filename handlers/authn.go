package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
)

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of a request context, or
// nil for operations without security.
func PrincipalFrom(ctx context.Context) *models.Principal {
	p, _ := ctx.Value(principalKey{}).(*models.Principal)
	return p
}

// touchEvery bounds how often last_seen_at is written per session.
const touchEvery = time.Minute

// authenticate is Huma middleware: operations whose security names the
// bearer scheme require a valid session token; the principal is put in the
// context. Failures answer 401 with WWW-Authenticate and change nothing.
func (h *handler) authenticate(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		if op == nil || !requiresBearer(op.Security) {
			next(ctx)
			return
		}
		token, ok := bearerToken(ctx.Header("Authorization"))
		if !ok {
			h.unauthorized(api, ctx, "a bearer token is required")
			return
		}
		tokenHash := models.HashToken(token)
		p, err := h.d.Store.Authenticate(ctx.Context(), tokenHash)
		if err != nil {
			if models.IsCode(err, models.EUNAUTHORIZED) {
				h.unauthorized(api, ctx, "the session token is invalid, expired or revoked")
				return
			}
			h.log().ErrorContext(ctx.Context(), "authenticate", "err", err)
			_ = huma.WriteErr(api, ctx, http.StatusInternalServerError, "internal error")
			return
		}
		if h.now().Sub(p.LastSeenAt) >= touchEvery {
			if err := h.d.Store.TouchSession(ctx.Context(), tokenHash, p.SessionID, p.DeviceID); err != nil {
				h.log().WarnContext(ctx.Context(), "touch session", "err", err)
			}
		}
		next(huma.WithValue(ctx, principalKey{}, p))
	}
}

func (h *handler) unauthorized(api huma.API, ctx huma.Context, msg string) {
	ctx.SetHeader("WWW-Authenticate", `Bearer realm="sovereign", error="invalid_token"`)
	_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, msg) // code "unauthenticated" (NewProblem)
}

func requiresBearer(sec []map[string][]string) bool {
	return slices.ContainsFunc(sec, func(m map[string][]string) bool {
		_, ok := m[SecurityBearer]
		return ok
	})
}

func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 256 {
		return "", false
	}
	return token, true
}

// requireAdmin is the admin-only guard for admin operations.
func requireAdmin(ctx context.Context) (*models.Principal, error) {
	p := PrincipalFrom(ctx)
	if p == nil {
		return nil, models.Errorf(models.EUNAUTHORIZED, "unauthenticated", "authentication required")
	}
	if !p.IsAdmin() {
		return nil, models.Errorf(models.EFORBIDDEN, "admin_required", "this operation requires the admin role")
	}
	return p, nil
}
