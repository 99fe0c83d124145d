package config

import (
	"strings"
	"testing"
)

// TestDerivedOriginsAgreeWithListen: options left out are derived so that
// they agree with each other and with the listen address.
func TestDerivedOriginsAgreeWithListen(t *testing.T) {
	tests := []struct {
		args        []string
		rpID        string
		origins     string
		base, admin string
	}{
		{nil, "localhost", "http://localhost:8080", "http://localhost:8080", "http://localhost:8080"},
		{[]string{"--listen", "127.0.0.1:9000"}, "localhost", "http://localhost:9000", "http://localhost:9000", "http://localhost:9000"},
		{[]string{"--listen", "[::1]:9000"}, "localhost", "http://localhost:9000", "http://localhost:9000", "http://localhost:9000"},
		{[]string{"--listen", "0.0.0.0:80"}, "localhost", "http://localhost", "http://localhost", "http://localhost"},
		{[]string{"--listen", "127.0.0.1:9000", "--admin-listen", "127.0.0.1:9090"}, "localhost",
			"http://localhost:9000,http://localhost:9090", "http://localhost:9000", "http://localhost:9090"},
		{[]string{"--rp-id", "chat.example.org"}, "chat.example.org", "https://chat.example.org", "https://chat.example.org", "https://chat.example.org"},
		{[]string{"--rp-origins", "https://chat.example.org"}, "chat.example.org", "https://chat.example.org", "https://chat.example.org", "https://chat.example.org"},
		{[]string{"--rp-origins", "https://chat.example.org,https://admin.chat.example.org", "--admin-listen", "127.0.0.1:9090"}, "chat.example.org",
			"https://chat.example.org,https://admin.chat.example.org", "https://chat.example.org", "http://localhost:9090"},
		{[]string{"--rp-id", "example.org", "--rp-origins", "https://chat.example.org", "--public-url", "https://chat.example.org/"}, "example.org",
			"https://chat.example.org", "https://chat.example.org", "https://chat.example.org"},
		{[]string{"--rp-id", "chat.example.org", "--listen", "0.0.0.0:8443", "--tls-cert", "config.go", "--tls-key", "config.go"}, "chat.example.org",
			"https://chat.example.org:8443", "https://chat.example.org:8443", "https://chat.example.org:8443"},
		{[]string{"--listen", "127.0.0.1:8443", "--tls-cert", "config.go", "--tls-key", "config.go"}, "localhost",
			"https://localhost:8443", "https://localhost:8443", "https://localhost:8443"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cfg, _, err := Load("t", tt.args, noEnv)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if cfg.RPID != tt.rpID || strings.Join(cfg.RPOrigins, ",") != tt.origins {
				t.Errorf("rp-id %q origins %q, want %q %q", cfg.RPID, strings.Join(cfg.RPOrigins, ","), tt.rpID, tt.origins)
			}
			if cfg.BaseURL() != tt.base || cfg.AdminBaseURL() != tt.admin {
				t.Errorf("base %q admin %q, want %q %q", cfg.BaseURL(), cfg.AdminBaseURL(), tt.base, tt.admin)
			}
		})
	}
}

// TestInconsistentPasskeyOptionsRefused: combinations no browser accepts
// are refused in one line that names the option and says the fix.
func TestInconsistentPasskeyOptionsRefused(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of the one-line message
	}{
		{[]string{"--rp-origins", "http://chat.example.org"},
			[]string{`--rp-origins "http://chat.example.org"`, "only on https", "use https://chat.example.org"}},
		{[]string{"--rp-origins", "http://127.0.0.1:8080"},
			[]string{`--rp-origins "http://127.0.0.1:8080"`, "not an IP address", "use http://localhost:8080"}},
		{[]string{"--rp-id", "localhost", "--rp-origins", "https://chat.example.org"},
			[]string{`--rp-origins "https://chat.example.org"`, `not --rp-id "localhost"`, "set --rp-id chat.example.org"}},
		{[]string{"--rp-origins", "https://chat.example.org,http://localhost:9090"},
			[]string{`--rp-origins "http://localhost:9090"`, `not --rp-id "chat.example.org"`}},
		{[]string{"--rp-id", "evil.example.org", "--rp-origins", "https://chat.example.org"},
			[]string{"not --rp-id", "or a parent domain of it"}},
		{[]string{"--rp-id", "example.org", "--rp-origins", "https://notexample.org"},
			[]string{"not --rp-id"}},
		{[]string{"--rp-id", "192.168.1.10"},
			[]string{"--rp-id", "not an IP address", "use localhost"}},
		{[]string{"--rp-id", "::1"},
			[]string{"--rp-id", "not an IP address"}},
		{[]string{"--public-url", "https://elsewhere.example.org"},
			[]string{"--public-url", "not one of --rp-origins", "add it to --rp-origins"}},
		{[]string{"--listen", "127.0.0.1:9000", "--admin-listen", "127.0.0.1:9000"},
			[]string{"--admin-listen", "same address as --listen"}},
		{[]string{"--no-such-flag"}, []string{"unknown flag --no-such-flag"}},
		{[]string{"--listen"}, []string{"--listen needs a value"}},
		{[]string{"--max-message-bytes", "abc"}, []string{`invalid --max-message-bytes "abc": not an integer`}},
		{[]string{"--allow-insecure-permissions=maybe"}, []string{"--allow-insecure-permissions", "maybe"}},
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
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Fatalf("not one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
		})
	}
}

// TestWithBoundAddresses: a port-0 listen address becomes the bound one
// and derived origins follow it; given origins stay as given.
func TestWithBoundAddresses(t *testing.T) {
	cfg, _, err := Load("t", []string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.WithBoundAddresses("127.0.0.1:41000", "127.0.0.1:41001")
	if got.Listen != "127.0.0.1:41000" || strings.Join(got.RPOrigins, ",") != "http://localhost:41000,http://localhost:41001" ||
		got.AdminBaseURL() != "http://localhost:41001" {
		t.Fatalf("bound: listen %s origins %v admin %s", got.Listen, got.RPOrigins, got.AdminBaseURL())
	}
	cfg, _, err = Load("t", []string{"--listen", "127.0.0.1:0", "--rp-origins", "http://localhost:8080"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.WithBoundAddresses("127.0.0.1:41000", ""); strings.Join(got.RPOrigins, ",") != "http://localhost:8080" {
		t.Fatalf("given origins changed: %v", got.RPOrigins)
	}
}
