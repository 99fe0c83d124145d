package handlers

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"

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
// key-package caps), and documents the 413 problem on every operation that
// takes a body. Huma reads the operation's MaxBodyBytes at request time, so
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
		code := strconv.Itoa(http.StatusRequestEntityTooLarge)
		if op.Responses == nil || op.Responses[code] != nil {
			return
		}
		for _, other := range []string{"422", "400", "401"} {
			if r := op.Responses[other]; r != nil && r.Content != nil {
				op.Responses[code] = &huma.Response{Description: http.StatusText(http.StatusRequestEntityTooLarge), Content: r.Content}
				return
			}
		}
	})
}
