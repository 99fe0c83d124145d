// Package geoiptest writes small MaxMind-format databases for tests, with
// github.com/maxmind/mmdbwriter (a test-only dependency: only tests import
// this package).
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is one network of a test database and where it is, in the
// GeoIP2-City layout (country.iso_code, country.names, city.names, and the
// coordinates and postal code a real City database carries, which the
// server must never pass on).
type Network struct {
	CIDR    string // e.g. 81.2.69.0/24
	Country string // ISO code, e.g. GB
	Name    string // English country name, e.g. United Kingdom
	City    string // English city name; empty for a country-only record
}

// TestNetwork is a public network that MaxMind's own test databases use
// (81.2.69.0/24, London), mapped here to Berlin.
var TestNetwork = Network{CIDR: "81.2.69.0/24", Country: "DE", Name: "Germany", City: "Berlin"}

// Write builds a database of type dbType (e.g. GeoLite2-City) holding nets
// and returns its path in a temporary directory of t.
func Write(t testing.TB, dbType string, nets ...Network) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, Languages: []string{"en"},
		// Private networks may be given a location too, to show that the
		// server never looks them up.
		IncludeReservedNetworks: true})
	if err != nil {
		t.Fatalf("new mmdb writer: %v", err)
	}
	for _, n := range nets {
		_, network, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatalf("parse %s: %v", n.CIDR, err)
		}
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(n.Country), "names": mmdbtype.Map{"en": mmdbtype.String(n.Name)}},
		}
		if n.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.City), "de": mmdbtype.String(n.City)}}
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(52.52), "longitude": mmdbtype.Float64(13.405), "accuracy_radius": mmdbtype.Uint16(20)}
			rec["postal"] = mmdbtype.Map{"code": mmdbtype.String("10115")}
		}
		if err := w.Insert(network, rec); err != nil {
			t.Fatalf("insert %s: %v", n.CIDR, err)
		}
	}
	path := filepath.Join(t.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatalf("write mmdb: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
