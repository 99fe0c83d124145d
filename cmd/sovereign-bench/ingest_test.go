package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIngestSenders runs the ingest scenario briefly against the real binary
// with each kind of sender and checks that messages were durably accepted,
// none failed, and the result names the sender that ran.
// SOVEREIGN_CAPACITY_BIN runs it against another binary, as for the
// capacity test.
func TestIngestSenders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server")
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "lean"},
		{[]string{"--net-http-senders"}, "net/http"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"--out", out, "--concurrency", "4", "--groups", "2", "--size", "128",
				"--duration", "1s", "--warmup", "300ms"}, tc.flags...)
			if bin := os.Getenv("SOVEREIGN_CAPACITY_BIN"); bin != "" {
				args = append(args, "--bin", bin)
			}
			if code := run(append(args, "ingest"), io.Discard, os.Stderr); code != 0 {
				t.Fatalf("sovereign-bench ingest exited %d", code)
			}
			raw, err := os.ReadFile(filepath.Join(out, "ingest.json"))
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				Params map[string]any `json:"params"`
				Rows   []struct {
					Metric string  `json:"metric"`
					Value  float64 `json:"value"`
				} `json:"rows"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatal(err)
			}
			if got := res.Params["senders"]; got != tc.want {
				t.Errorf("senders = %v, want %s", got, tc.want)
			}
			got := map[string]float64{}
			for _, r := range res.Rows {
				got[r.Metric] = r.Value
				if strings.HasPrefix(r.Metric, "failed sends") {
					t.Errorf("%s: %.0f", r.Metric, r.Value)
				}
			}
			t.Logf("%s: %.0f msgs/s, %.0f latency samples", tc.want, got["messages accepted/s (durable)"], got["send latency samples"])
			if got["messages accepted/s (durable)"] <= 0 || got["send latency samples"] <= 0 {
				t.Errorf("no message accepted: %v", got)
			}
		})
	}
}
