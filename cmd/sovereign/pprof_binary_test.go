package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestPprofOnlyWhenAskedAndOnLoopback: profiles are served on the
// --pprof-listen address, never on the API listener; a non-loopback address
// is a configuration error.
func TestPprofOnlyWhenAskedAndOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	p := startBinary(t, filepath.Join(t.TempDir(), "data"), "--pprof-listen", addr)
	if resp, body := get(t, "http://"+addr+"/debug/pprof/cmdline"); resp.StatusCode != 200 || !strings.Contains(string(body), "serve") {
		t.Fatalf("pprof cmdline = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, p.URL+"/debug/pprof/"); resp.StatusCode != 404 {
		t.Fatalf("API listener serves /debug/pprof/: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+addr+"/v1/groups"); resp.StatusCode != 404 {
		t.Fatalf("pprof listener serves the API: %d", resp.StatusCode)
	}
	// The writer's counters (read by sovereign-bench): migrations and the
	// first-start admin invite have gone through the writer by now.
	resp, body := get(t, "http://"+addr+"/debug/writer")
	var ws struct {
		Batches  uint64 `json:"batches"`
		UseCases uint64 `json:"use_cases"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &ws) != nil || ws.Batches == 0 || ws.UseCases < ws.Batches {
		t.Fatalf("/debug/writer = %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, p.URL+"/debug/writer"); resp.StatusCode != 404 {
		t.Fatalf("API listener serves /debug/writer: %d", resp.StatusCode)
	}

	var stderr strings.Builder
	code := run([]string{"serve", "--data-dir", t.TempDir(), "--pprof-listen", "0.0.0.0:6060"}, func(string) string { return "" }, &strings.Builder{}, &stderr)
	if code != exitConfig || !strings.Contains(stderr.String(), "--pprof-listen") {
		t.Fatalf("non-loopback --pprof-listen: exit %d, %q", code, stderr.String())
	}
}
