package metrics

import "context"

// The operation a request is, for the request metrics: the server's
// middleware puts an empty slot in the request context, the API layer
// names the operation in it, and the middleware reads it once the request
// is answered. Requests no operation claims keep the server's own label.

type operationKey struct{}

type operationSlot struct{ name string }

// WithOperationSlot returns ctx with an empty operation slot.
func WithOperationSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, operationKey{}, &operationSlot{})
}

// SetOperation names the request's operation (no-op without a slot).
func SetOperation(ctx context.Context, name string) {
	if s, ok := ctx.Value(operationKey{}).(*operationSlot); ok {
		s.name = name
	}
}

// Operation returns the operation named in ctx's slot, or "".
func Operation(ctx context.Context) string {
	if s, ok := ctx.Value(operationKey{}).(*operationSlot); ok {
		return s.name
	}
	return ""
}

// EnsureOperationSlot returns ctx with an operation slot: its own when it
// has one already (so an outer middleware and an inner one read the same).
func EnsureOperationSlot(ctx context.Context) context.Context {
	if _, ok := ctx.Value(operationKey{}).(*operationSlot); ok {
		return ctx
	}
	return WithOperationSlot(ctx)
}
