package handlers

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/config"
)

// limitKey is the client address per-IP limits count the request under
// (IPv6 cut to --ipv6-prefix).
func (h *handler) limitKey(ctx context.Context) netip.Addr {
	bits := h.d.Config.Limits.IPv6Prefix
	if bits == 0 {
		bits = config.Default().Limits.IPv6Prefix
	}
	return clientip.LimitKey(clientip.From(ctx), bits)
}

// hugaDefaultMaxBody is what Huma gives an operation with a body that set
// no MaxBodyBytes of its own.
const hugaDefaultMaxBody = 1 << 20

// limitBodies makes --max-body-bytes the request-body limit of every
// operation that takes a body and did not size its own (the message, commit
// and key-package operations size theirs from --max-message-bytes and the
// key-package caps), and documents the 400, 413 and 415 problems on every
// operation that takes a body. Huma reads the operation's MaxBodyBytes at request time, so
// the hook, which runs as each operation is added, sets what applies.
func (h *handler) limitBodies(api huma.API) {
	limit := h.d.Config.Limits.MaxBodyBytes
	if limit <= 0 {
		limit = config.Default().Limits.MaxBodyBytes
	}
	oapi := api.OpenAPI()
	oapi.OnAddOperation = append(oapi.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) {
		if op.RequestBody == nil {
			return
		}
		if op.MaxBodyBytes == hugaDefaultMaxBody || op.MaxBodyBytes == 0 {
			// Huma answers 413 when it reads MaxBodyBytes bytes: allow
			// exactly limit bytes.
			op.MaxBodyBytes = limit + 1
		}
		// A RawBody field next to a JSON Body (the ceremony finish steps
		// keep the exact bytes for the WebAuthn library) makes Huma list
		// application/octet-stream too, which it then refuses with 415:
		// the document lists only what the operation takes.
		if c := op.RequestBody.Content; c["application/json"] != nil && c["application/octet-stream"] != nil &&
			c["application/octet-stream"].Schema != nil && c["application/octet-stream"].Schema.Format == "binary" {
			delete(c, "application/octet-stream")
		}
		// Huma answers these itself for any operation with a body: 400 for
		// a body that is not JSON (or missing when required), 413 beyond
		// the limit, 415 for a content type the operation does not take.
		for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType} {
			documentProblem(op, status)
		}
	})
}

// documentProblem adds status to op's responses, with the problem body its
// other problems have, unless it is there already.
func documentProblem(op *huma.Operation, status int) {
	code := strconv.Itoa(status)
	if op.Responses == nil || op.Responses[code] != nil {
		return
	}
	for _, other := range []string{"422", "400", "401", "403", "404"} {
		if r := op.Responses[other]; r != nil && r.Content != nil {
			op.Responses[code] = &huma.Response{Description: http.StatusText(status), Content: r.Content}
			return
		}
	}
}

// refuseUnsafeParameters is Huma middleware: a path, query or header
// parameter the operation declares that holds a NUL or is not UTF-8 is
// answered 422 validation_failed before the operation runs. No parameter
// of the API is binary, and such bytes reach the database (SQLite's
// tokenizer and PostgreSQL's text type both refuse them, as a 500).
func (h *handler) refuseUnsafeParameters(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		if op == nil {
			next(ctx)
			return
		}
		for _, p := range op.Parameters {
			var v string
			switch p.In {
			case "path":
				v = ctx.Param(p.Name)
			case "query":
				v = ctx.Query(p.Name)
			case "header":
				v = ctx.Header(p.Name)
			}
			if strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
				_ = huma.WriteErr(api, ctx, http.StatusUnprocessableEntity, "parameter "+p.Name+" holds a NUL or is not UTF-8",
					&huma.ErrorDetail{Location: p.In + "." + p.Name, Message: "a NUL or bytes that are not UTF-8"})
				return
			}
		}
		next(ctx)
	}
}
