package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestDefaultsAreValid(t *testing.T) {
	cfg, _, err := Load("t", nil, noEnv)
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.DBPath() != "./data/sovereign.db" || cfg.RPID != "localhost" ||
		cfg.RPOrigins[0] != "http://localhost:8080" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if cfg.SessionTTL != 30*24*time.Hour || cfg.Limits.CeremonyTimeout != 60*time.Second ||
		cfg.Limits.MaxMessageBytes != 64*1024 || cfg.Limits.MessagesPerMinute != 60 ||
		cfg.Limits.StreamsPerIP != 10 || cfg.Limits.StreamsTotal != 1000 {
		t.Fatalf("threat-model defaults changed: %+v", cfg)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:9000\nmessages-per-minute: 10\nstreams-per-ip: 3\ntrusted-proxies: [10.0.0.0/8, 192.168.0.0/16]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SOVEREIGN_MESSAGES_PER_MINUTE": "20", "SOVEREIGN_STREAMS_PER_IP": "4"}
	cfg, _, err := Load("t", []string{"--config", file, "--streams-per-ip", "5"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" {
		t.Errorf("file value lost: listen = %s", cfg.Listen)
	}
	if cfg.Limits.MessagesPerMinute != 20 {
		t.Errorf("env did not override file: %d", cfg.Limits.MessagesPerMinute)
	}
	if cfg.Limits.StreamsPerIP != 5 {
		t.Errorf("flag did not override env: %d", cfg.Limits.StreamsPerIP)
	}
	if len(cfg.TrustedProxyPrefixes()) != 2 {
		t.Errorf("trusted proxies from file: %v", cfg.TrustedProxies)
	}
}

func TestInvalidValuesExplainThemselves(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nonsense"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "host:port"},
		{[]string{"--messages-per-minute", "-1"}, "--messages-per-minute"},
		{[]string{"--max-message-bytes", "abc"}, "not an integer"},
		{[]string{"--rp-id", "192.168.1.10"}, "not an IP address"},
		{[]string{"--rp-origins", "localhost:8080"}, "--rp-origins"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, "CIDR"},
		{[]string{"--tls-cert", "/nonexistent.pem"}, "readable file"},
		{[]string{"--tls-cert", "config_test.go"}, "together with --tls-cert"},
		{[]string{"--session-ttl", "5s"}, "at least 1m"},
		{[]string{"--audit-retention", "1h"}, "0 (keep forever) or at least 24h"},
		{[]string{"--log-level", "loud"}, "one of"},
		{[]string{"--no-such-flag"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := Load("t", tt.args, noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error type %T", err)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q: want one line mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAuditRetentionZeroMeansForever(t *testing.T) {
	for _, v := range []string{"0", "0s", "24h", "8760h"} {
		if _, _, err := Load("t", []string{"--audit-retention", v}, noEnv); err != nil {
			t.Errorf("--audit-retention %s: %v", v, err)
		}
	}
}

func TestUnknownFileKeyRejected(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("lisen: 1\n"), 0o600)
	_, _, err := Load("t", []string{"--config", file}, noEnv)
	if err == nil || !strings.Contains(err.Error(), `unknown key "lisen"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvBadValue(t *testing.T) {
	_, _, err := Load("t", nil, func(k string) string {
		if k == "SOVEREIGN_SESSION_TTL" {
			return "forever"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "SOVEREIGN_SESSION_TTL") {
		t.Fatalf("err = %v", err)
	}
}

func TestPprofListenLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"192.168.1.2:6060", false},
		{"example.org:6060", false},
		{"127.0.0.1", false},
	} {
		_, _, err := Load("t", []string{"--pprof-listen", tc.addr}, noEnv)
		if (err == nil) != tc.ok {
			t.Errorf("--pprof-listen %q: err = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "pprof-listen") {
			t.Errorf("--pprof-listen %q: error does not name the flag: %v", tc.addr, err)
		}
	}
}
