package sovereign

import (
	"strings"
	"testing"
)

func TestDecodeStreamEvent(t *testing.T) {
	good := `{"id":"0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f","seq":7,"kind":"application","group_id":"Z3JvdXA","epoch":2,` +
		`"sender_device_id":"d1","payload":"AAEC","server_time":"2026-12-01T00:00:00Z"}`
	ev, err := decodeStreamEvent("7", good)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 7 || string(ev.GroupID) != "group" || ev.Epoch != 2 || ev.SenderDeviceID != "d1" || len(ev.Payload) != 3 || ev.Kind != EventBodyKindApplication {
		t.Fatalf("decoded %+v", ev)
	}
	if _, err := ev.Notice(); err != ErrNotNotice {
		t.Fatalf("notice of an application event: %v", err)
	}
	for name, c := range map[string][2]string{
		"id differs from seq": {"8", good},
		"seq zero":            {"", strings.Replace(good, `"seq":7`, `"seq":0`, 1)},
		"bad group id":        {"", strings.Replace(good, `"Z3JvdXA"`, `"***"`, 1)},
		"not JSON":            {"", "{"},
	} {
		if _, err := decodeStreamEvent(c[0], c[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	notice := `{"id":"x","seq":9,"kind":"notice","payload":"eyJ0eXBlIjoicmVtb3ZlX2RldmljZSIsImRldmljZV9pZCI6ImRldiJ9","server_time":"2026-12-01T00:00:00Z"}`
	ev, err = decodeStreamEvent("9", notice)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ev.Notice()
	if err != nil || n.Type != NoticeRemoveDevice || n.DeviceID != "dev" || len(n.Raw) == 0 {
		t.Fatalf("notice %+v %v", n, err)
	}
}

// FuzzDecodeStreamEvent: feed events come from the network; decoding never
// panics and never yields an event without a positive seq.
func FuzzDecodeStreamEvent(f *testing.F) {
	f.Add("7", `{"id":"a","seq":7,"kind":"application","group_id":"Z3JvdXA","payload":"AAEC","server_time":"2026-12-01T00:00:00Z"}`)
	f.Add("", `{"seq":1,"kind":"notice","payload":"e30"}`)
	f.Fuzz(func(t *testing.T, id, data string) {
		ev, err := decodeStreamEvent(id, data)
		if err == nil && ev.Seq < 1 {
			t.Fatalf("event with seq %d", ev.Seq)
		}
		if err == nil {
			_, _ = ev.Notice()
		}
	})
}
