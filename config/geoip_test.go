package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/geoip/geoiptest"
)

// TestGeoIPDBFlag: --geoip-db is off by default; a MaxMind DB with
// countries is accepted; a missing file, a file that is not a MaxMind DB
// and an ASN database are refused with one line naming the flag.
func TestGeoIPDBFlag(t *testing.T) {
	cfg, _, err := Load("t", nil, noEnv)
	if err != nil || cfg.GeoIPDB != "" {
		t.Fatalf("default --geoip-db %q, %v", cfg.GeoIPDB, err)
	}
	good := geoiptest.Write(t, "GeoLite2-City", geoiptest.TestNetwork)
	if cfg, _, err := Load("t", []string{"--geoip-db", good}, noEnv); err != nil || cfg.GeoIPDB != good {
		t.Fatalf("a City database: %q, %v", cfg.GeoIPDB, err)
	}
	junk := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	if err := os.WriteFile(junk, []byte("<html>404 not found</html>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(t.TempDir(), "missing.mmdb"), "must name a readable file"},
		{junk, "is not a MaxMind DB with countries"},
		{geoiptest.Write(t, "GeoLite2-ASN"), "is not a MaxMind DB with countries"},
	} {
		_, _, err := Load("t", []string{"--geoip-db", c.path}, noEnv)
		if err == nil || !strings.Contains(err.Error(), "--geoip-db") || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("--geoip-db %s: %v, want one line with %q", filepath.Base(c.path), err, c.want)
		}
	}
}
