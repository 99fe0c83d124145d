package geoip_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sovereign-im/sovereign/geoip"
	"github.com/sovereign-im/sovereign/geoip/geoiptest"
	"github.com/sovereign-im/sovereign/models"
)

// TestLocate: a public address of the database's network gets its country
// and city (nothing else); a country database gives the country only;
// private, loopback, CGNAT and unknown addresses get nothing.
func TestLocate(t *testing.T) {
	db, err := geoip.Open(geoiptest.Write(t, "GeoLite2-City", geoiptest.TestNetwork,
		geoiptest.Network{CIDR: "2a02:8100::/32", Country: "FR", Name: "France", City: "Paris"},
		// Private and other non-public ranges are in this database, as a
		// careless one might have them: they must still locate nothing.
		geoiptest.Network{CIDR: "10.0.0.0/8", Country: "US", Name: "United States", City: "Intranet"},
		geoiptest.Network{CIDR: "127.0.0.0/8", Country: "US", Name: "United States", City: "Loopback"},
		geoiptest.Network{CIDR: "100.64.0.0/10", Country: "US", Name: "United States", City: "CGNAT"},
		geoiptest.Network{CIDR: "fd00::/8", Country: "US", Name: "United States", City: "ULA"}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		addr string
		want *models.Location
	}{
		{"81.2.69.142", &models.Location{Country: "DE", City: "Berlin"}},
		{"::ffff:81.2.69.1", &models.Location{Country: "DE", City: "Berlin"}},
		{"2a02:8100::1", &models.Location{Country: "FR", City: "Paris"}},
		{"81.2.70.1", nil},
		{"127.0.0.1", nil},
		{"::1", nil},
		{"10.1.2.3", nil},
		{"192.168.1.1", nil},
		{"172.16.0.1", nil},
		{"100.64.0.1", nil},
		{"169.254.1.1", nil},
		{"fd00::1", nil},
		{"fe80::1", nil},
	} {
		got := db.Locate(netip.MustParseAddr(c.addr))
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("Locate(%s) = %+v, want %+v", c.addr, got, c.want)
		}
	}
	if got := db.Locate(netip.Addr{}); got != nil {
		t.Errorf("invalid address located: %+v", got)
	}

	country, err := geoip.Open(geoiptest.Write(t, "DBIP-Country-Lite", geoiptest.Network{CIDR: "81.2.69.0/24", Country: "GB", Name: "United Kingdom"}))
	if err != nil {
		t.Fatal(err)
	}
	defer country.Close()
	if got := country.Locate(netip.MustParseAddr("81.2.69.142")); got == nil || *got != (models.Location{Country: "GB"}) {
		t.Errorf("country database: %+v", got)
	}
}

// TestOpenRefusesOtherFiles: a missing file, a file that is not a MaxMind
// DB and a MaxMind DB without countries (ASN) are refused.
func TestOpenRefusesOtherFiles(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.mmdb")
	if err := os.WriteFile(junk, []byte("this is not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(t.TempDir(), "missing.mmdb"), junk, geoiptest.Write(t, "GeoLite2-ASN")} {
		if _, err := geoip.Open(p); !errors.Is(err, geoip.ErrNotGeoDB) {
			t.Errorf("Open(%s) = %v, want ErrNotGeoDB", filepath.Base(p), err)
		}
		if err := geoip.Check(p); err == nil {
			t.Errorf("Check(%s) accepted", filepath.Base(p))
		}
	}
}

// BenchmarkLocate: one lookup of a public address in a small City
// database (what a new device's sign-in pays with --geoip-db).
func BenchmarkLocate(b *testing.B) {
	db, err := geoip.Open(geoiptest.Write(b, "GeoLite2-City", geoiptest.TestNetwork))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	addr := netip.MustParseAddr("81.2.69.142")
	b.ReportAllocs()
	for b.Loop() {
		if db.Locate(addr) == nil {
			b.Fatal("not located")
		}
	}
}
