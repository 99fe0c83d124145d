package settings

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/sovereign-im/sovereign/config"
)

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Overrides
		ok   bool
	}{
		{"empty", Overrides{}, true},
		{"open", Overrides{RegistrationMode: ptr("open")}, true},
		{"bad mode", Overrides{RegistrationMode: ptr("closed")}, false},
		{"zero messages", Overrides{MessagesPerMinute: ptr(0)}, false},
		{"max messages", Overrides{MessagesPerMinute: ptr(100000)}, true},
		{"too many messages", Overrides{MessagesPerMinute: ptr(100001)}, false},
		{"burst", Overrides{AuthBurst: ptr(1000)}, true},
		{"burst too big", Overrides{AuthBurst: ptr(1001)}, false},
		{"negative claims", Overrides{ClaimsPerMinute: ptr(-1)}, false},
	}
	for _, tt := range tests {
		if err := tt.o.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestDecodeSkipsWhatItCannotUse(t *testing.T) {
	o, bad := Decode(map[string]json.RawMessage{
		"registration_mode":   json.RawMessage(`"open"`),
		"messages_per_minute": json.RawMessage(`"many"`),
		"auth_burst":          json.RawMessage(`0`),
		"from_the_future":     json.RawMessage(`1`),
		"claims_per_minute":   json.RawMessage(`7`),
	})
	if !slices.Equal(bad, []string{"auth_burst", "from_the_future", "messages_per_minute"}) {
		t.Fatalf("bad = %v", bad)
	}
	if *o.RegistrationMode != "open" || *o.ClaimsPerMinute != 7 || o.MessagesPerMinute != nil || o.AuthBurst != nil {
		t.Fatalf("decoded %s", o)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	o := Overrides{RegistrationMode: ptr("invite"), AuthPerMinute: ptr(12)}
	back, bad := Decode(o.Encode())
	if len(bad) > 0 || back.String() != o.String() || !slices.Equal(back.Names(), []string{"auth_per_minute", "registration_mode"}) {
		t.Fatalf("round trip %s → %s (%v)", o, back, bad)
	}
}

func TestLiveAppliesOverridesAndTellsSubscribers(t *testing.T) {
	cfg := config.Default()
	l := NewLive(cfg)
	var seen []int
	l.Subscribe(func(v Values) { seen = append(seen, v.MessagesPerMinute) })
	l.Set(Overrides{MessagesPerMinute: ptr(5)})
	if l.Get().MessagesPerMinute != 5 || l.Get().AuthBurst != cfg.Limits.AuthBurst || l.Defaults().MessagesPerMinute != 60 {
		t.Fatalf("values %+v", l.Get())
	}
	l.Set(l.Overrides().Merge(Overrides{AuthBurst: ptr(2)}, []string{"messages_per_minute"}))
	if l.Get().MessagesPerMinute != 60 || l.Get().AuthBurst != 2 {
		t.Fatalf("after merge %+v", l.Get())
	}
	if !slices.Equal(seen, []int{60, 5, 60}) {
		t.Fatalf("subscriber saw %v", seen)
	}
}
