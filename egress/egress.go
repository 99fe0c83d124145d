// Package egress is how Sovereign calls URLs that clients chose (Web Push
// endpoints) without becoming a tool against the operator's own network
// (SSRF). A Policy accepts only https:// URLs on public addresses: the host
// name is resolved and every address it has must be public, and the check
// runs again on every connect (net.Dialer's Control hook sees the address
// actually dialled, so DNS rebinding between check and connect does not
// help). Redirects are never followed and no proxy from the environment is
// used. An operator may allow named hosts (a self-hosted UnifiedPush
// distributor on the LAN): those may also use http:// and private addresses.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Resolver looks host names up (net.DefaultResolver implements it).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy decides which URLs the server may call.
type Policy struct {
	// AllowHosts are host names or IP addresses (lower case, no port) that
	// bypass the public-address rule and may use http://.
	AllowHosts []string
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
	// RootCAs, when set, replaces the system roots (tests).
	RootCAs *x509.CertPool
}

// RefusedError says why a URL or an address may not be called.
type RefusedError struct {
	Reason string // short machine-readable reason
	Detail string
}

func (e *RefusedError) Error() string { return "refused: " + e.Detail }

func refused(reason, format string, args ...any) error {
	return &RefusedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// IsRefused reports whether err is (or wraps) a policy refusal.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

func (p *Policy) resolver() Resolver {
	if p.Resolver != nil {
		return p.Resolver
	}
	return net.DefaultResolver
}

// allowed reports whether host (no port) is on the operator's list.
func (p *Policy) allowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	for _, h := range p.AllowHosts {
		if strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".") == host {
			return true
		}
	}
	return false
}

// extra are the special-purpose ranges netip's predicates do not cover
// (IANA IPv4/IPv6 special-purpose registries) that must never be called.
var extra = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",         // "this network"
		"100.64.0.0/10",     // carrier-grade NAT (RFC 6598)
		"192.0.0.0/24",      // IETF protocol assignments
		"192.0.2.0/24",      // TEST-NET-1
		"198.18.0.0/15",     // benchmarking
		"198.51.100.0/24",   // TEST-NET-2
		"203.0.113.0/24",    // TEST-NET-3
		"240.0.0.0/4",       // reserved, and 255.255.255.255
		"64:ff9b::/96",      // NAT64: may reach private IPv4
		"64:ff9b:1::/48",    // local-use NAT64
		"100::/64",          // discard-only
		"2001::/32",         // Teredo: embeds an IPv4 address
		"2001:db8::/32",     // documentation
		"2002::/16",         // 6to4: embeds an IPv4 address
		"fec0::/10",         // site-local (deprecated)
		"::/128", "::1/128", // unspecified, loopback (also caught below)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddr refuses an address that is not public unicast: loopback,
// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
// (169.254/16, fe80::/10), multicast, unspecified, carrier-grade NAT and
// the other special-purpose ranges. IPv4-mapped IPv6 addresses are judged
// as the IPv4 address they map.
func CheckAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	switch {
	case !a.IsValid():
		return refused("invalid_address", "not an IP address")
	case a.IsLoopback():
		return refused("loopback", "%s is a loopback address", a)
	case a.IsPrivate():
		return refused("private", "%s is a private address", a)
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return refused("link_local", "%s is a link-local address", a)
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return refused("multicast", "%s is a multicast address", a)
	case a.IsUnspecified():
		return refused("unspecified", "%s is the unspecified address", a)
	}
	for _, p := range extra {
		if p.Contains(a) {
			return refused("special_purpose", "%s is in the special-purpose range %s", a, p)
		}
	}
	return nil
}

// CheckURL parses raw and checks it against the policy, resolving its host:
// https only (http too for allowed hosts), no user info, and every address
// the host resolves to must be public unless the host is allowed.
func (p *Policy) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, refused("malformed_url", "not a URL")
	}
	host := u.Hostname()
	if host == "" || !u.IsAbs() {
		return nil, refused("malformed_url", "not an absolute URL with a host")
	}
	if u.User != nil {
		return nil, refused("user_info", "URLs with user info are not accepted")
	}
	allowed := p.allowed(host)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowed:
	default:
		return nil, refused("scheme", "only https:// URLs are accepted")
	}
	if allowed {
		return u, nil
	}
	if _, err := p.resolve(ctx, host); err != nil {
		return nil, err
	}
	return u, nil
}

// resolve returns the host's addresses, refusing if any is not public.
func (p *Policy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if err := CheckAddr(a); err != nil {
			return nil, err
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := p.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if err := CheckAddr(a); err != nil {
			return nil, refused("resolves_to_non_public", "%s resolves to %s: %s", host, a.Unmap(), err.(*RefusedError).Detail)
		}
	}
	return addrs, nil
}

// Control is the net.Dialer Control hook that refuses a connection to a
// non-public address; it runs before connect(2), on every address dialled.
func Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refused("invalid_address", "cannot parse dialled address %q", address)
	}
	return CheckAddr(ap.Addr())
}

// DialContext connects to addr (host:port): an allowed host directly,
// any other host by resolving it through the policy (every address must
// be public) and dialling the addresses with the Control hook.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if p.allowed(host) {
		return d.DialContext(ctx, network, addr)
	}
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d.Control = Control
	var first error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// Client returns an HTTP client under the policy: its dialler checks every
// connection, it never follows a redirect, uses no proxy and sends no
// cookies; timeout bounds each request.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.RootCAs},
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
