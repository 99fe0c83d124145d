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
	rows := Issue22Table([]*Result{in8, in64k, fo}, 35<<20)
	got := map[string]string{}
	for _, r := range rows {
		got[r.Figure] = r.Measured
	}
	for fig, want := range map[string]string{
		"durable ingest, 8 senders, 128 B":      "4444 msgs/s (p99 4.7 ms)",
		"durable ingest, 64 senders, 128 B":     "not run", // 1 KiB messages are not the issue's figure
		"fan-out, 100 subscribers, max rate":    "99963 deliveries/s, receive p99 17.8 ms",
		"idle server RSS after start":           "35.0 MiB",
		"1,000 subscribers, 200 msgs/s offered": "not run",
	} {
		if !strings.HasPrefix(got[fig], want) {
			t.Errorf("%s: %q, want %q…", fig, got[fig], want)
		}
	}
}
