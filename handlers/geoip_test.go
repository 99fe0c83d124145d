package handlers_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/geoip/geoiptest"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// lastNewDevice is the payload of the newest new_device notice in evs, raw
// and decoded.
func lastNewDevice(t *testing.T, evs []handlers.EventBody) ([]byte, models.NewDeviceNotice) {
	t.Helper()
	for i := len(evs) - 1; i >= 0; i-- {
		var n models.NewDeviceNotice
		if evs[i].Kind == "notice" && json.Unmarshal(evs[i].Payload, &n) == nil && n.Type == models.NoticeNewDevice {
			return evs[i].Payload, n
		}
	}
	t.Fatalf("no new_device notice in %v", noticeTypes(evs))
	return nil, models.NewDeviceNotice{}
}

// TestNewDeviceNoticeLocation (issue #14, item 4): with --geoip-db, a new
// device signing in from a public address of the database gives the other
// devices a new_device notice with its country and city, and nothing
// finer (no coordinates, postal code or address, which the database has),
// and the address is not logged (beyond the access log); a private address and the loopback give
// no location although the database maps them; without --geoip-db (the
// default) the notice has no location.
func TestNewDeviceNoticeLocation(t *testing.T) {
	const public = "81.2.69.142" // in geoiptest.TestNetwork: Berlin, DE
	db := geoiptest.Write(t, "GeoLite2-City", geoiptest.TestNetwork,
		geoiptest.Network{CIDR: "10.0.0.0/8", Country: "US", Name: "United States", City: "Intranet"},
		geoiptest.Network{CIDR: "127.0.0.0/8", Country: "US", Name: "United States", City: "Loopback"})
	var logs bytes.Buffer
	s := testutil.NewServerWithLog(t, &logs, -8, func(c *config.Config) { // -8: below debug, everything
		c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
		c.GeoIPDB = db
	})
	alice, pk := s.RegisterMember(t, "alice")
	if got := noticeTypes(feed(t, s, alice)); len(got) != 0 {
		t.Fatalf("first device got notices %v", got)
	}
	phone := s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceName: "Firefox on Linux",
		Headers: []string{"X-Forwarded-For", public}})
	raw, n := lastNewDevice(t, feed(t, s, alice))
	if n.DeviceID != phone.DeviceID || n.Location == nil || *n.Location != (models.Location{Country: "DE", City: "Berlin"}) {
		t.Fatalf("notice %s", raw)
	}
	testutil.ValidateComponent(t, "NewDeviceNotice", raw)
	for _, never := range []string{public, "81.2.69", "latitude", "longitude", "52.52", "postal", "10115", "accuracy"} {
		if strings.Contains(string(raw), never) {
			t.Errorf("notice carries %q: %s", never, raw)
		}
	}
	// The access log's client= field is the server's as always (see
	// docs/operations.md); nothing else, the lookup included, logs it.
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, public) && !strings.Contains(l, "msg=request ") {
			t.Errorf("the sign-in's address was logged: %s", l)
		}
	}
	if got := noticeTypes(feed(t, s, phone)); len(got) != 0 {
		t.Fatalf("new device got notices %v", got)
	}

	// Private and loopback addresses have no location, whatever the
	// database says.
	for i, from := range [][]string{{"X-Forwarded-For", "10.1.2.3"}, nil} {
		laptop := s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceName: "laptop", Headers: from})
		raw, n := lastNewDevice(t, feed(t, s, alice))
		if n.DeviceID != laptop.DeviceID || n.Location != nil || strings.Contains(string(raw), "location") {
			t.Fatalf("sign-in %d from a non-public address: %s", i, raw)
		}
		testutil.ValidateComponent(t, "NewDeviceNotice", raw)
	}

	// Signing in again on a known device posts no notice at all.
	before := len(noticeTypes(feed(t, s, alice)))
	s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceID: phone.DeviceID, Headers: []string{"X-Forwarded-For", public}})
	if after := noticeTypes(feed(t, s, alice)); len(after) != before {
		t.Fatalf("re-login on a known device announced: %v", after)
	}

	// Off by default: the same sign-in carries no location.
	off := testutil.NewServer(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"} })
	bob, bpk := off.RegisterMember(t, "bob")
	off.Login(t, bpk, testutil.LoginOptions{Username: "bob", DeviceName: "phone", Headers: []string{"X-Forwarded-For", public}})
	evs := feed(t, off, bob)
	raw, n = lastNewDevice(t, evs)
	if n.Location != nil || strings.Contains(string(raw), "location") || !slices.Equal(noticeTypes(evs), []string{"new_device"}) {
		t.Fatalf("without --geoip-db: %s", raw)
	}
}
