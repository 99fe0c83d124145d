package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sovereign-im/sovereign/models"
)

// TestKeyPackagesLowNoticeReachesFeed: by default a claim that crosses the
// low-water mark puts one key_packages_low notice in the owner device's feed
// and publishes it to that device only.
func TestKeyPackagesLowNoticeReachesFeed(t *testing.T) {
	pub := &recorder{}
	s, clock := openClocked(t, Options{Publisher: pub})
	ctx := context.Background()
	alice, devs := seedUser(t, s, "alice", 1)
	_, bob := seedUser(t, s, "bob", 1)
	if _, err := s.UploadKeyPackages(ctx, uploadInput(devs[0], buildFor(devs[0], clock.Now(), 4), -1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // 4 -> 3 -> 2 (crossed 3) -> 1
		if _, err := s.ClaimKeyPackages(ctx, ClaimKeyPackagesInput{ClaimerDeviceID: bob[0], TargetUserID: alice, CipherSuite: 1, LowWater: 3}); err != nil {
			t.Fatal(err)
		}
	}
	var rows []struct {
		Kind      string `bun:"kind"`
		Recipient string `bun:"recipient_device_id"`
		Payload   []byte `bun:"payload"`
	}
	if err := s.rdb.NewRaw(`SELECT kind, recipient_device_id, payload FROM events`).Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Kind != "notice" || rows[0].Recipient != devs[0] {
		t.Fatalf("events = %+v, want one notice to %s", rows, devs[0])
	}
	var n models.KeyPackagesLowNotice
	if err := json.Unmarshal(rows[0].Payload, &n); err != nil {
		t.Fatal(err)
	}
	if n != (models.KeyPackagesLowNotice{Type: "key_packages_low", DeviceID: devs[0], CipherSuite: 1, Remaining: 2, LowWater: 3}) {
		t.Fatalf("notice = %+v", n)
	}
	if got := pub.all(); len(got) != 1 || len(got[0].devices) != 1 || got[0].devices[0] != devs[0] || got[0].ev.Kind != models.KindNotice {
		t.Fatalf("published %+v", got)
	}
}
