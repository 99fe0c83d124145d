package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/testutil"
)

const nginxPath = "/usr/sbin/nginx"

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate for localhost and its key; it returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, pool
}

// nginxConfig is the shipped packaging/nginx/sovereign.conf with this
// test's ports, certificate and upstream, inside a minimal nginx.conf.
func nginxConfig(t *testing.T, dir string, httpsPort, httpPort int, upstream, certFile, keyFile string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "packaging", "nginx", "sovereign.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(raw)
	for old, repl := range map[string]string{
		"listen 443 ssl http2;":        "listen 127.0.0.1:" + strconv.Itoa(httpsPort) + " ssl http2;",
		"listen 80;":                   "listen 127.0.0.1:" + strconv.Itoa(httpPort) + ";",
		"server 127.0.0.1:8080;":       "server " + upstream + ";",
		"server_name chat.example.org": "server_name localhost",
		"/etc/letsencrypt/live/chat.example.org/fullchain.pem": certFile,
		"/etc/letsencrypt/live/chat.example.org/privkey.pem":   keyFile,
	} {
		if !strings.Contains(site, old) {
			t.Fatalf("the shipped nginx config no longer has %q", old)
		}
		site = strings.ReplaceAll(site, old, repl)
	}
	var kept []string
	for _, line := range strings.Split(site, "\n") {
		if !strings.Contains(line, "[::]") { // no IPv6 in the test
			kept = append(kept, line)
		}
	}
	conf := "user root;\nworker_processes 1;\npid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log stderr warn;\n" +
		"events { worker_connections 256; }\nhttp {\n  access_log off;\n" +
		"  client_body_temp_path " + filepath.Join(dir, "body") + ";\n  proxy_temp_path " + filepath.Join(dir, "proxy") + ";\n" +
		"  fastcgi_temp_path " + filepath.Join(dir, "fcgi") + ";\n  uwsgi_temp_path " + filepath.Join(dir, "uwsgi") + ";\n" +
		"  scgi_temp_path " + filepath.Join(dir, "scgi") + ";\n" + strings.Join(kept, "\n") + "\n}\n"
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNginxInFrontOfTheBinary runs Debian's nginx with the shipped
// configuration in front of the real binary and runs checkThroughProxy:
// passkeys on the proxied https origin, SSE unbuffered, WebSocket upgrade,
// long-poll, and the client's own address seen by the server.
func TestNginxInFrontOfTheBinary(t *testing.T) {
	if _, err := os.Stat(nginxPath); err != nil {
		t.Skip("nginx not installed (apt-get install nginx)")
	}
	dir := t.TempDir()
	httpsPort, httpPort := freePort(t), freePort(t)
	origin := "https://localhost:" + strconv.Itoa(httpsPort)
	p := startBinary(t, filepath.Join(dir, "data"), "--rp-origins", origin, "--trusted-proxies", "127.0.0.1/32",
		"--messages-per-minute", "100000", "--log-level", "debug")
	upstream := strings.TrimPrefix(p.URL, "http://")

	certFile, keyFile, pool := selfSigned(t, dir)
	conf := nginxConfig(t, dir, httpsPort, httpPort, upstream, certFile, keyFile)
	if out, err := exec.Command(nginxPath, "-t", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	startProxy(t, exec.Command(nginxPath, "-p", dir, "-c", conf, "-g", "daemon off;"), filepath.Join(dir, "nginx.log"), httpsPort)

	checkThroughProxy(t, p, origin, pool)
	stop(t, p)
}
