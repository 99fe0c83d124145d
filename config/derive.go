package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Derivation and consistency of the options that must agree with each
// other for passkeys to work: the RP ID, the WebAuthn origins, the public
// URL and the listen addresses. A browser runs a passkey ceremony only on
// an origin that is https (or http://localhost) and whose host is the RP
// ID or one of its subdomains; go-webauthn then accepts only the listed
// origins. Options the operator leaves out are derived so that they agree;
// options given that cannot work are refused at start with the fix.

// Derive fills in the options that follow from others when they were not
// given (see derive). Validate calls it; so does server.New, for
// configurations built in code.
func Derive(c *Config) { derive(c) }

// derive fills in --rp-id and --rp-origins when they were not given:
// the RP ID is the host of the first given origin, else localhost; the
// origins are the listen address(es) on localhost for a localhost RP ID,
// else https on the RP ID (with the port when Sovereign serves TLS itself
// on another port than 443).
func derive(c *Config) {
	if c.RPID == "" {
		c.derived.rpID = true
	}
	if len(c.RPOrigins) == 0 {
		c.derived.origins = true
	}
	if c.derived.rpID {
		c.RPID = "localhost"
		if !c.derived.origins {
			if u, err := url.Parse(c.RPOrigins[0]); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
				c.RPID = strings.ToLower(u.Hostname())
			}
		}
	}
	if c.derived.origins {
		c.RPOrigins = derivedOrigins(c)
	}
}

// derivedOrigins are the origins that follow from the RP ID, the listen
// addresses and whether Sovereign serves TLS itself.
func derivedOrigins(c *Config) []string {
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	if strings.EqualFold(c.RPID, "localhost") {
		out := []string{originOn(scheme, "localhost", portOf(c.Listen))}
		if c.AdminListen != "" {
			if o := originOn(scheme, "localhost", portOf(c.AdminListen)); o != out[0] {
				out = append(out, o)
			}
		}
		return out
	}
	port := ""
	if c.TLSCert != "" {
		port = portOf(c.Listen)
	}
	// Without TLS of its own, a server on a real domain sits behind a
	// TLS-terminating proxy on the standard port.
	return []string{originOn("https", c.RPID, port)}
}

// originOn is scheme://host[:port], leaving out the scheme's default port.
func originOn(scheme, host, port string) string {
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func portOf(hostport string) string {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	return port
}

// WithBoundAddresses returns the configuration once its listeners are
// bound: a listen address with port 0 becomes the bound one, and derived
// origins are derived again from it. api and admin are the bound addresses
// (admin empty without --admin-listen).
func (c Config) WithBoundAddresses(api, admin string) Config {
	if portOf(c.Listen) == "0" && api != "" {
		c.Listen = api
	}
	if c.AdminListen != "" && portOf(c.AdminListen) == "0" && admin != "" {
		c.AdminListen = admin
	}
	if c.derived.origins {
		c.RPOrigins = derivedOrigins(&c)
	}
	return c
}

// checkConsistency refuses RP ID, origin and public-URL combinations that
// no browser accepts, each in one line that says how to fix it.
func checkConsistency(c *Config) error {
	if c.Postgres() && c.BackupDir != "" {
		return &Error{Msg: "--backup-dir makes SQLite backups; with --database postgres://… back up the database with PostgreSQL's own tools (pg_dump, or continuous archiving)"}
	}
	rpID := strings.ToLower(c.RPID)
	for _, o := range c.RPOrigins {
		u, err := url.Parse(o)
		if err != nil {
			return &Error{Msg: fmt.Sprintf("invalid --rp-origins %q: %v", o, err)}
		}
		host := strings.ToLower(u.Hostname())
		if net.ParseIP(host) != nil {
			return &Error{Msg: fmt.Sprintf("invalid --rp-origins %q: passkeys need a domain name, not an IP address; use %s",
				o, originOn(u.Scheme, "localhost", u.Port()))}
		}
		if u.Scheme == "http" && !isLocalhost(host) {
			return &Error{Msg: fmt.Sprintf("invalid --rp-origins %q: browsers allow passkeys only on https (or http://localhost); "+
				"use %s and terminate TLS in a proxy or with --tls-cert/--tls-key", o, originOn("https", u.Hostname(), u.Port()))}
		}
		if host != rpID && !strings.HasSuffix(host, "."+rpID) {
			fix := fmt.Sprintf("set --rp-id %s", host)
			if !c.derived.rpID {
				fix = fmt.Sprintf("set --rp-id %s (or a parent domain of it) or drop this origin", host)
			}
			return &Error{Msg: fmt.Sprintf("invalid --rp-origins %q: its host is not --rp-id %q or a subdomain of it, so browsers refuse passkeys there; %s",
				o, c.RPID, fix)}
		}
	}
	if c.PublicURL != "" {
		pub := strings.TrimSuffix(c.PublicURL, "/")
		found := false
		for _, o := range c.RPOrigins {
			if strings.EqualFold(strings.TrimSuffix(o, "/"), pub) {
				found = true
			}
		}
		if !found {
			return &Error{Msg: fmt.Sprintf("invalid --public-url %q: it is not one of --rp-origins (%s), so passkeys fail on pages opened from invite links; "+
				"add it to --rp-origins or leave --public-url out", c.PublicURL, strings.Join(c.RPOrigins, ","))}
		}
	}
	if c.AdminListen != "" && c.AdminListen == c.Listen && portOf(c.Listen) != "0" {
		return &Error{Msg: fmt.Sprintf("invalid --admin-listen %q: it is the same address as --listen; give it another port or leave it out", c.AdminListen)}
	}
	return nil
}

// isLocalhost reports a host browsers treat as a secure context over
// plain http: localhost and its subdomains.
func isLocalhost(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// BaseURL is where invite links point and where people open the server:
// --public-url, else the first WebAuthn origin.
func (c *Config) BaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	if len(c.RPOrigins) > 0 {
		return strings.TrimSuffix(c.RPOrigins[0], "/")
	}
	return listenURL(c.scheme(), c.Listen)
}

// InviteLink is the link that opens registration with an invite code. The
// code is in the fragment, which browsers never send to servers or proxies.
func (c *Config) InviteLink(code string) string { return c.BaseURL() + "/invite#" + code }

// AdminBaseURL is the base URL of the admin UI: BaseURL, or with
// --admin-listen the WebAuthn origin (--rp-origins) on the admin port, else
// the admin address itself (as localhost when it is a loopback address).
func (c *Config) AdminBaseURL() string {
	if c.AdminListen == "" {
		return c.BaseURL()
	}
	if port := portOf(c.AdminListen); port != "" {
		for _, o := range c.RPOrigins {
			if u, err := url.Parse(o); err == nil && effectivePort(u) == port {
				return strings.TrimSuffix(o, "/")
			}
		}
	}
	return listenURL(c.scheme(), c.AdminListen)
}

// InviteLinkFor is the link for an invite: admin invites lead to the admin
// UI (on --admin-listen when set; ?role=admin tells /invite to open the
// console), member invites to the member app on the public address.
func (c *Config) InviteLinkFor(code string, admin bool) string {
	if admin {
		return c.AdminBaseURL() + "/invite?role=admin#" + code
	}
	return c.InviteLink(code)
}

func (c *Config) scheme() string {
	if c.TLSCert != "" {
		return "https"
	}
	return "http"
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// listenURL is a URL a browser on this machine can open for a listen
// address: loopback and unspecified hosts become localhost (passkeys need
// a domain; 127.0.0.1 and [::] never work for them).
func listenURL(scheme, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return scheme + "://" + hostport
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		host = "localhost"
	}
	if n, err := strconv.Atoi(port); err == nil && ((scheme == "http" && n == 80) || (scheme == "https" && n == 443)) {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
