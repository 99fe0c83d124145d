package handlers

import (
	"context"
	"sync"
	"time"

	"github.com/sovereign-im/sovereign/ratelimit"
)

// Ack writes are bounded per device (issue #19, finding 10): an ack at or
// below the device's known cursor is answered from memory without a write,
// and the writes that do move the cursor (or are refused for passing the
// feed's head) are limited to AckWritesPerMinute per device, with bursts of
// AckBurst. A WebSocket waits for its next token before reading on (its acks
// coalesce: the socket is simply read more slowly); POST /v1/sync/ack
// answers 429 instead. An honest client acks once per batch it processed:
// far below this.
const (
	AckWritesPerMinute = 600
	AckBurst           = 20
	// ackCursorsCached bounds the remembered cursors; past it, memory
	// starts over (a forgotten cursor only costs one write).
	ackCursorsCached = 100_000
)

type ackGate struct {
	limit *ratelimit.Limiter
	mu    sync.Mutex
	acked map[string]int64 // device → highest cursor written
}

func newAckGate(now func() time.Time) *ackGate {
	return &ackGate{limit: ratelimit.New(AckWritesPerMinute, AckBurst, now), acked: map[string]int64{}}
}

// known returns the device's cursor when seq is at or below it.
func (g *ackGate) known(deviceID string, seq int64) (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, ok := g.acked[deviceID]
	return cur, ok && seq <= cur
}

func (g *ackGate) remember(deviceID string, acked int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.acked) >= ackCursorsCached {
		clear(g.acked)
	}
	if acked > g.acked[deviceID] {
		g.acked[deviceID] = acked
	}
}

// ack records a device's ack. On a WebSocket (wait) every ack frame takes
// one of the device's tokens, waiting for it: the socket is read no faster
// than the budget, so a flood costs neither writes nor CPU. Over REST (no
// wait) an ack at or below the known cursor is answered from memory, and
// one that needs a write beyond the budget is refused with 429.
func (h *handler) ack(ctx context.Context, deviceID string, seq int64, wait bool) (int64, error) {
	g := h.acks
	if !wait {
		if cur, ok := g.known(deviceID, seq); ok {
			return cur, nil
		}
	}
	for {
		ok, retry := g.limit.Allow(deviceID, 1)
		if ok {
			break
		}
		if !wait {
			return 0, rateLimited("ack_rate_limited", "too many acknowledgements from this device", retry)
		}
		t := time.NewTimer(min(retry, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	if cur, ok := g.known(deviceID, seq); ok {
		return cur, nil
	}
	acked, err := h.d.Store.Ack(ctx, deviceID, seq)
	if err != nil {
		return 0, err
	}
	g.remember(deviceID, acked)
	return acked, nil
}
