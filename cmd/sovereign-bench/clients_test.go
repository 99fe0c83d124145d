package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScenarioClients runs ingest and an SSE fan-out briefly against the
// real binary with each load-generator client (the lean one and
// --net-http-client) and checks that messages were durably accepted with
// no failed send, that every subscriber received every message, and that
// each result names the client that ran. SOVEREIGN_CAPACITY_BIN runs it
// against another binary, as for the capacity test.
func TestScenarioClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server")
	}
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "lean"},
		{[]string{"--net-http-client"}, "net/http"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"--out", out, "--concurrency", "4", "--groups", "2", "--size", "128",
				"--duration", "1s", "--warmup", "300ms",
				"--members", "20", "--rate", "100", "--publishers", "2", "--fanout-duration", "1s", "--transports", "sse"}, tc.flags...)
			if bin := os.Getenv("SOVEREIGN_CAPACITY_BIN"); bin != "" {
				args = append(args, "--bin", bin)
			}
			if code := run(append(args, "ingest", "fanout"), io.Discard, os.Stderr); code != 0 {
				t.Fatalf("sovereign-bench ingest fanout exited %d", code)
			}
			in := readResult(t, filepath.Join(out, "ingest.json"), tc.want)
			for m, v := range in {
				if strings.HasPrefix(m, "failed sends") {
					t.Errorf("ingest: %s: %.0f", m, v)
				}
			}
			t.Logf("ingest: %.0f msgs/s, %.0f latency samples", in["messages accepted/s (durable)"], in["send latency samples"])
			if in["messages accepted/s (durable)"] <= 0 || in["send latency samples"] <= 0 {
				t.Errorf("ingest: no message accepted: %v", in)
			}
			fo := readResult(t, filepath.Join(out, "fanout-sse.json"), tc.want)
			t.Logf("fanout: %.0f of %.0f deliveries, p99 %.1f ms", fo["deliveries received"], fo["deliveries expected"], fo["publish-to-receive p99"])
			if fo["deliveries expected"] < 20*100 || fo["deliveries received"] != fo["deliveries expected"] || fo["failed sends"] != 0 {
				t.Errorf("fanout: %v", fo)
			}
		})
	}
}

// readResult reads a scenario's JSON result, checks that it names the
// client want, and returns its figures by metric.
func readResult(t *testing.T, path, want string) map[string]float64 {
	t.Helper()
	raw, err := os.ReadFile(path)
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
	if got := res.Params["client"]; got != want {
		t.Errorf("%s: client = %v, want %s", filepath.Base(path), got, want)
	}
	got := map[string]float64{}
	for _, r := range res.Rows {
		got[r.Metric] = r.Value
	}
	return got
}
