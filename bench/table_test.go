package bench

import (
	"strings"
	"testing"
)

func TestIssue22TablePicksTheIssuesFigures(t *testing.T) {
	in8 := &Result{Scenario: "ingest-c8", Params: map[string]any{"concurrency": 8, "size_bytes": 128}}
	in8.Add("messages accepted/s (durable)", 4444, "msg/s", "")
	in8.Add("send latency p99", 4.7, "ms", "")
	in64k := &Result{Scenario: "ingest-c64", Params: map[string]any{"concurrency": 64, "size_bytes": 1024}}
	in64k.Add("messages accepted/s (durable)", 9999, "msg/s", "")
	fo := &Result{Scenario: "fanout-sse", Params: map[string]any{"transport": "sse", "members": 100, "rate_msgs_per_s": 1000}}
	fo.Add("deliveries/s", 99963, "deliveries/s", "")
	fo.Add("publish-to-receive p99", 17.8, "ms", "")
	fo1k := &Result{Scenario: "fanout-m1000-sse", Params: map[string]any{"transport": "sse", "members": 1000, "rate_msgs_per_s": 200}}
	fo1k.Add("messages published/s", 200, "msg/s", "")
	fo1k.Add("publish-to-receive p99", 60.7, "ms", "")
	capSmall := &Result{Scenario: "capacity", Params: map[string]any{"conns": 10000, "broadcast": true, "hold_s": 60.0}}
	capSmall.Add("RSS per connection", 5.04, "KiB", "")
	capHeld := &Result{Scenario: "capacity", Params: map[string]any{"conns": 19900, "broadcast": true, "hold_s": 60.0}}
	capHeld.Add("RSS per connection", 5.9, "KiB", "")
	capHeld.Add("idle SSE connections held", 19900, "", "")
	capHeld.Add("streams that received the broadcast", 19900, "", "")
	capHeld.Add("broadcast: send to last stream", 1.89, "s", "")
	rows := Issue22Table([]*Result{in8, in64k, fo, fo1k, capSmall}, 35<<20)
	for _, r := range rows {
		if r.Figure == "20,000 idle streams on this machine" && !strings.HasPrefix(r.Measured, "not run") {
			t.Errorf("a 10,000-stream broadcast fills the 20,000 row: %q", r.Measured)
		}
	}
	rows = Issue22Table([]*Result{in8, in64k, fo, fo1k, capHeld}, 35<<20)
	got := map[string]string{}
	for _, r := range rows {
		got[r.Figure] = r.Measured
	}
	for fig, want := range map[string]string{
		"durable ingest, 8 senders, 128 B":        "4444 msgs/s (p99 4.7 ms)",
		"durable ingest, 64 senders, 128 B":       "not run", // 1 KiB messages are not the issue's figure
		"fan-out, 100 subscribers, max rate":      "99963 deliveries/s, receive p99 17.8 ms",
		"idle server RSS after start":             "35.0 MiB (36.7 MB)",
		"1,000 subscribers, 200 msgs/s offered":   "200 msgs/s published of 200 offered, receive p99 60.7 ms",
		"RSS per idle SSE stream, 10,000 streams": "5.9 KiB (19900 streams)",
		"20,000 idle streams on this machine":     "19900 of 19900 held 60 s, 19900 received the broadcast, the last 1.89 s after the send",
	} {
		if !strings.HasPrefix(got[fig], want) {
			t.Errorf("%s: %q, want %q…", fig, got[fig], want)
		}
	}
}
