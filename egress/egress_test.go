package egress

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a table; a host with several answers gives
// them in turn (DNS rebinding).
type fakeResolver struct {
	table map[string][][]netip.Addr
	calls atomic.Int32
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	answers, ok := f.table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := int(f.calls.Add(1)) - 1
	return answers[min(n, len(answers)-1)], nil
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestCheckAddr(t *testing.T) {
	refusedAddrs := []string{
		"127.0.0.1", "127.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.1", "192.168.1.1",
		"169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255",
		"192.0.2.1", "198.18.0.1", "240.0.0.1",
		"::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
		"64:ff9b::a00:1", "2001:db8::1", "2002:a00:1::1", "2001::1", "fec0::1",
	}
	for _, s := range refusedAddrs {
		if err := CheckAddr(netip.MustParseAddr(s)); !IsRefused(err) {
			t.Errorf("CheckAddr(%s) = %v, want a refusal", s, err)
		}
	}
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "2a00:1450:4001::200e"} {
		if err := CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want nil", s, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	res := &fakeResolver{table: map[string][][]netip.Addr{
		"push.example":      {addrs("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")},
		"evil.example":      {addrs("127.0.0.1")},
		"half.example":      {addrs("93.184.216.34", "10.0.0.7")},
		"metadata.example":  {addrs("169.254.169.254")},
		"v6local.example":   {addrs("fd00::5")},
		"distributor.lan":   {addrs("192.168.1.20")},
		"loop6.example":     {addrs("::1")},
		"cgnat.example":     {addrs("100.64.1.1")},
		"mapped.example":    {addrs("::ffff:127.0.0.1")},
		"linklocal.example": {addrs("fe80::1")},
	}}
	p := &Policy{Resolver: res, AllowHosts: []string{"distributor.lan", "127.0.0.2"}}
	ctx := context.Background()
	for _, raw := range []string{
		"https://127.0.0.1/push/x",
		"https://127.0.0.1:8443/push/x",
		"https://10.1.2.3/push",
		"https://169.254.169.254/latest/meta-data",
		"https://[::1]/push",
		"https://[fc00::1]/push",
		"https://[fd12::1]:443/push",
		"https://evil.example/push",
		"https://half.example/push",
		"https://metadata.example/",
		"https://v6local.example/",
		"https://loop6.example/",
		"https://cgnat.example/",
		"https://mapped.example/",
		"https://linklocal.example/",
		"http://push.example/push",         // plain http
		"ftp://push.example/push",          // other scheme
		"https://user:pw@push.example/",    // user info
		"/relative",                        // not absolute
		"https://localhost/push",           // resolves to loopback (system resolver not used: the fake has no entry)
		"https://[::ffff:10.0.0.1]/push",   // IPv4-mapped private
		"https://0x7f000001/push",          // not an IP literal to us; does not resolve
		"https://2130706433/push",          // ditto
		"http://distributor.lan.evil/push", // not the allowed host
	} {
		if _, err := p.CheckURL(ctx, raw); err == nil {
			t.Errorf("CheckURL(%q) accepted", raw)
		}
	}
	for _, raw := range []string{
		"https://push.example/wpush/v2/abc",
		"https://distributor.lan/up/abc",  // allowed by the operator
		"http://distributor.lan:8080/up",  // allowed hosts may use http
		"https://DISTRIBUTOR.LAN./up/abc", // case and trailing dot
		"https://127.0.0.2/up",            // an allowed IP literal
	} {
		if _, err := p.CheckURL(ctx, raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want accepted", raw, err)
		}
	}
}

// The real resolver: localhost resolves to loopback and is refused.
func TestCheckURLSystemResolverLocalhost(t *testing.T) {
	_, err := (&Policy{}).CheckURL(context.Background(), "https://localhost/push")
	if !IsRefused(err) {
		t.Fatalf("https://localhost = %v, want a refusal", err)
	}
}

func TestControlRefusesBeforeConnect(t *testing.T) {
	for _, a := range []string{"127.0.0.1:443", "10.0.0.1:443", "169.254.169.254:80", "[::1]:443", "[fc00::1]:443", "[fe80::1]:443", "100.64.0.1:443"} {
		if err := Control("tcp", a, nil); !IsRefused(err) {
			t.Errorf("Control(%s) = %v, want a refusal", a, err)
		}
	}
	if err := Control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("Control(public) = %v", err)
	}
}

// The client refuses at connect time too: a host that resolved to a
// public address when checked and to loopback when dialled (DNS
// rebinding) is refused, and so is a literal loopback address, before any
// byte is sent.
func TestClientRefusesOnConnect(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	res := &fakeResolver{table: map[string][][]netip.Addr{
		"rebind.example": {addrs("93.184.216.34"), addrs("127.0.0.1")},
	}}
	p := &Policy{Resolver: res}
	if _, err := p.CheckURL(context.Background(), "https://rebind.example/push"); err != nil {
		t.Fatalf("first resolution is public: %v", err)
	}
	c := p.Client(5 * time.Second)
	for _, u := range []string{"https://rebind.example:" + port + "/push", "https://127.0.0.1:" + port + "/push", "https://[::1]:" + port + "/"} {
		resp, err := c.Post(u, "application/octet-stream", nil)
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s succeeded", u)
			continue
		}
		if !IsRefused(err) {
			t.Errorf("POST %s: %v, want a refusal", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
}

// An allowed host is dialled, over http too, and a redirect is not
// followed.
func TestClientAllowedHostNoRedirect(t *testing.T) {
	var redirected atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			redirected.Add(1)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	p := &Policy{AllowHosts: []string{"127.0.0.1"}}
	if _, err := p.CheckURL(context.Background(), srv.URL+"/push"); err != nil {
		t.Fatalf("allowed host: %v", err)
	}
	resp, err := p.Client(5*time.Second).Post(srv.URL+"/push", "application/octet-stream", nil)
	if err != nil {
		t.Fatalf("POST to an allowed host: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || redirected.Load() != 0 {
		t.Fatalf("status %d, redirect followed %d times; want 307 and none", resp.StatusCode, redirected.Load())
	}
}
