package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestEveryTagIsWellFormed checks every rule of every `validate` tag
// against the vocabulary and the field's type, including rules that a
// default configuration never reaches (after omitempty on an empty value,
// or dive over an empty list).
func TestEveryTagIsWellFormed(t *testing.T) {
	var walk func(typ reflect.Type)
	count := 0
	walk = func(typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			sf := typ.Field(i)
			if sf.Type.Kind() == reflect.Struct && sf.IsExported() {
				walk(sf.Type)
				continue
			}
			tag := sf.Tag.Get("validate")
			if tag == "" {
				continue
			}
			elem := sf.Type
			for _, r := range strings.Split(tag, ",") {
				count++
				name, param, _ := strings.Cut(r, "=")
				switch name {
				case "omitempty", "required":
					continue
				case "required_with":
					if _, ok := typ.FieldByName(param); !ok {
						t.Errorf("%s: required_with names unknown field %q", sf.Name, param)
					}
					continue
				case "dive":
					if elem.Kind() != reflect.Slice {
						t.Errorf("%s: dive on a %s", sf.Name, elem)
						continue
					}
					elem = elem.Elem()
					continue
				}
				// Value rules: evaluating one on the zero value of the
				// field's type parses its parameter and checks the type.
				if _, err := holdsAny(reflect.New(elem).Elem(), r); err != nil {
					t.Errorf("%s: rule %q: %v", sf.Name, r, err)
				}
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
	if count < 50 {
		t.Fatalf("only %d rules found: the walk is broken", count)
	}
}

func TestMalformedRuleIsReported(t *testing.T) {
	type bad struct {
		N int `flag:"n" validate:"gte=1m"`
	}
	if _, err := checkStruct(reflect.ValueOf(bad{N: 5})); err == nil || !strings.Contains(err.Error(), "gte=1m") {
		t.Fatalf("a duration limit on an int: err = %v", err)
	}
	if _, err := checkStruct(reflect.ValueOf(struct {
		S string `flag:"s" validate:"shiny"`
	}{S: "x"})); err == nil || !strings.Contains(err.Error(), "shiny") {
		t.Fatalf("an unknown rule: err = %v", err)
	}
}

func TestRuleSemantics(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 65)
	tests := []struct {
		name string
		args []string
		want string // "" means accepted
	}{
		{"name of 64 characters", []string{"--rp-name", strings.Repeat("é", 64)}, ""},
		{"name of 65 characters", []string{"--rp-name", long}, "must be at most 64"},
		{"empty name", []string{"--rp-name", ""}, "--rp-name \"\": must be set"},
		{"bad entry of a list names the option and the entry", []string{"--rp-origins", "http://localhost:8080,ftp://x"}, `--rp-origins "ftp://x": must be an origin`},
		{"cors origin with a path", []string{"--cors-origins", "https://app.example.org/chat"}, "--cors-origins"},
		{"proxy list", []string{"--trusted-proxies", "10.0.0.0/8, fd00::/8"}, ""},
		{"proxy that is an address", []string{"--trusted-proxies", "10.0.0.1"}, "CIDR"},
		{"key without certificate", []string{"--tls-key", cert}, `--tls-cert "": must be set together with --tls-key`},
		{"certificate that is a directory", []string{"--tls-cert", dir, "--tls-key", cert}, "readable file"},
		{"duration at the bound", []string{"--shutdown-timeout", "10m"}, ""},
		{"duration over the bound", []string{"--shutdown-timeout", "10m1s"}, "at most 10m"},
		{"negative duration", []string{"--stream-coalesce", "-1ms"}, "at least 0"},
		{"integer under the bound", []string{"--max-body-bytes", "4095"}, "at least 4096"},
		{"integer at the bound", []string{"--max-body-bytes", "4096"}, ""},
		{"ipv6 prefix over 128", []string{"--ipv6-prefix", "129"}, "at most 128"},
		{"one of", []string{"--directory", "search"}, ""},
		{"one of, wrong case", []string{"--sqlite-synchronous", "full"}, "one of: FULL, NORMAL"},
		{"push contact", []string{"--push-contact", "mailto:ops@example.org"}, ""},
		{"push contact over http", []string{"--push-contact", "http://example.org"}, "mailto:"},
		{"push host with port", []string{"--push-allow-hosts", "ntfy.lan:80"}, "without port"},
		{"push hosts", []string{"--push-allow-hosts", "ntfy.lan,[fd00::1],192.168.1.20"}, ""},
		{"admin listen", []string{"--admin-listen", "127.0.0.1:8081"}, ""},
		{"admin listen without port", []string{"--admin-listen", "127.0.0.1"}, "--admin-listen"},
		{"geoip file that is not a database", []string{"--geoip-db", cert}, "MaxMind DB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load("t", tt.args, noEnv)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatal("accepted")
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q: want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDatabaseURLNeverEchoed(t *testing.T) {
	_, _, err := Load("t", []string{"--database", "mysql://u:s3cret@db/x"}, noEnv)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "--database") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Load("t", []string{"--database", "postgres://u@127.0.0.1:5432/x"}, noEnv); err != nil {
		t.Fatalf("a PostgreSQL URL: %v", err)
	}
}
