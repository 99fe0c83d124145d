// Package geoip finds the coarse location (country, city name at most) of a
// client address in a local MaxMind-format database (GeoLite2-City,
// GeoLite2-Country, DB-IP lite, --geoip-db), for sign-in notices. The
// lookup is done in the file on disk: no request leaves the server. It is
// off unless configured; then the server holds a nil Locator.
package geoip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/sovereign-im/sovereign/models"
)

// Locator finds the coarse location of a client address. A nil Locator
// (no --geoip-db) locates nothing.
type Locator interface {
	// Locate returns the location of addr, or nil when the address is
	// private, loopback or otherwise not public, or the database does not
	// know it.
	Locate(addr netip.Addr) *models.Location
}

// DB is a MaxMind-format database opened read-only (memory-mapped).
type DB struct {
	r *maxminddb.Reader
}

// ErrNotGeoDB is returned by Open for a file that is not a MaxMind DB with
// country data.
var ErrNotGeoDB = errors.New("not a MaxMind DB with countries (want a .mmdb such as GeoLite2-City, GeoLite2-Country or DB-IP lite)")

// Open opens the database at path. It refuses a file that is not a MaxMind
// DB, or one whose type has no country data (an ASN database, say).
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrNotGeoDB, err)
	}
	t := strings.ToLower(r.Metadata.DatabaseType)
	if !strings.Contains(t, "city") && !strings.Contains(t, "country") {
		_ = r.Close()
		return nil, fmt.Errorf("open %s: %w: its type is %q", path, ErrNotGeoDB, r.Metadata.DatabaseType)
	}
	return &DB{r: r}, nil
}

// Check reports whether path opens as a database Open accepts.
func Check(path string) error {
	db, err := Open(path)
	if err != nil {
		return err
	}
	return db.Close()
}

// Type is the database's type from its metadata, e.g. GeoLite2-City.
func (d *DB) Type() string { return d.r.Metadata.DatabaseType }

// Close releases the database.
func (d *DB) Close() error { return d.r.Close() }

// record is the part of a GeoIP2/GeoLite2/DB-IP record that is read:
// nothing else (coordinates, postal code, subdivisions) is even decoded.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	City struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

// Locate implements Locator. Errors (a corrupt record) locate nothing: a
// notice without a location is better than none.
func (d *DB) Locate(addr netip.Addr) *models.Location {
	addr = addr.Unmap()
	if !Public(addr) {
		return nil
	}
	var rec record
	if err := d.r.Lookup(addr).Decode(&rec); err != nil || !validCountry(rec.Country.ISOCode) {
		return nil
	}
	city := rec.City.Names.EN
	if len(city) > 128 {
		city = ""
	}
	return &models.Location{Country: rec.Country.ISOCode, City: city}
}

func validCountry(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598),
// which netip does not count as private.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Public reports whether addr is a public unicast address, the only kind
// that has a location: not loopback, private (RFC 1918, fc00::/7),
// link-local, multicast, unspecified or carrier-grade NAT.
func Public(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsValid() && addr.IsGlobalUnicast() && !addr.IsPrivate() && !cgnat.Contains(addr)
}
