// Package clientip decides which address a request comes from. The
// X-Forwarded-For header is believed only when the connection comes from a
// configured trusted proxy, and then only as far back as the chain of
// trusted proxies reaches: the first untrusted hop from the right is the
// client.
package clientip

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

type ctxKey struct{}

// Resolver finds the client address of requests.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver trusts X-Forwarded-For from the given proxy networks only.
func NewResolver(trusted []netip.Prefix) *Resolver { return &Resolver{trusted: trusted} }

// Resolve returns the client address of r.
func (res *Resolver) Resolve(r *http.Request) netip.Addr {
	remote := parseHostPort(r.RemoteAddr)
	if !res.isTrusted(remote) {
		return remote
	}
	hops := r.Header.Values("X-Forwarded-For")
	var chain []string
	for _, h := range hops {
		for _, p := range strings.Split(h, ",") {
			chain = append(chain, strings.TrimSpace(p))
		}
	}
	client := remote
	for i := len(chain) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(chain[i])
		if err != nil {
			// A garbled hop ends what we can believe: keep the last good one.
			return client
		}
		client = a.Unmap()
		if !res.isTrusted(client) {
			return client
		}
	}
	return client
}

func (res *Resolver) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func parseHostPort(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Middleware stores the resolved client address in the request context.
func (res *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithAddr(r.Context(), res.Resolve(r))))
	})
}

// WithAddr returns ctx carrying the client address.
func WithAddr(ctx context.Context, a netip.Addr) context.Context {
	return context.WithValue(ctx, ctxKey{}, a)
}

// From returns the client address stored by Middleware (invalid if none).
func From(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(ctxKey{}).(netip.Addr)
	return a
}

// LimitKey is the address per-IP limits count a client under: an IPv4
// address as is, an IPv6 address cut to its first v6Bits bits (a /64 by
// default: one subscriber usually holds a whole /64, so each of its
// addresses must not get a fresh budget). v6Bits outside 1..127 keeps the
// whole address.
func LimitKey(a netip.Addr, v6Bits int) netip.Addr {
	if !a.Is6() || a.Is4In6() || v6Bits <= 0 || v6Bits >= 128 {
		return a
	}
	p, err := a.WithZone("").Prefix(v6Bits)
	if err != nil {
		return a
	}
	return p.Addr()
}
