package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

const caddyPath = "/usr/bin/caddy"

// caddyConfig is the shipped packaging/caddy/Caddyfile with this test's
// port, certificate and upstream, and a global block that keeps Caddy to
// the test's directory (no admin endpoint, no ACME, no port-80 redirect).
func caddyConfig(t *testing.T, dir string, httpsPort int, upstream, certFile, keyFile string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "packaging", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(raw)
	for old, repl := range map[string]string{
		"chat.example.org {":           "https://localhost:" + strconv.Itoa(httpsPort) + " {\n\ttls " + certFile + " " + keyFile,
		"reverse_proxy 127.0.0.1:8080": "reverse_proxy " + upstream,
	} {
		if !strings.Contains(site, old) {
			t.Fatalf("the shipped Caddyfile no longer has %q", old)
		}
		site = strings.ReplaceAll(site, old, repl)
	}
	conf := "{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system " + filepath.Join(dir, "caddy-data") +
		"\n\tdefault_bind 127.0.0.1\n}\n\n" + site
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCaddyInFrontOfTheBinary runs Debian's Caddy with the shipped
// Caddyfile in front of the real binary and runs checkThroughProxy:
// passkeys on the proxied https origin, SSE unbuffered (flush_interval -1,
// no compression of event streams), WebSocket upgrade, long-poll, and the
// client's own address seen by the server.
func TestCaddyInFrontOfTheBinary(t *testing.T) {
	if _, err := os.Stat(caddyPath); err != nil {
		t.Skip("caddy not installed (apt-get install caddy)")
	}
	dir := t.TempDir()
	httpsPort := freePort(t)
	origin := "https://localhost:" + strconv.Itoa(httpsPort)
	p := startBinary(t, filepath.Join(dir, "data"), "--rp-origins", origin, "--trusted-proxies", "127.0.0.1/32",
		"--messages-per-minute", "100000", "--log-level", "debug")
	upstream := strings.TrimPrefix(p.URL, "http://")

	certFile, keyFile, pool := selfSigned(t, dir)
	conf := caddyConfig(t, dir, httpsPort, upstream, certFile, keyFile)
	env := append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg-config"))
	if out, err := (&exec.Cmd{Path: caddyPath, Args: []string{"caddy", "validate", "--config", conf, "--adapter", "caddyfile"}, Env: env}).CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	cd := exec.Command(caddyPath, "run", "--config", conf, "--adapter", "caddyfile")
	cd.Env = env
	startProxy(t, cd, filepath.Join(dir, "caddy.log"), httpsPort)
	checkThroughProxy(t, p, origin, pool)
	stop(t, p)
}
