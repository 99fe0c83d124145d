package main

import (
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
)

// TestParseFanoutRuns: --fanout-runs gives one run per configuration, each
// keeping the other fan-out options; an empty value is the one run of
// --members/--rate/--publishers; a malformed one is refused.
func TestParseFanoutRuns(t *testing.T) {
	base := bench.FanoutOptions{Members: 100, Rate: 1000, Publishers: 8, Size: 256, Duration: 8 * time.Second}
	runs, err := parseFanoutRuns("", base)
	if err != nil || len(runs) != 1 || runs[0] != base {
		t.Fatalf("empty: %+v, %v", runs, err)
	}
	runs, err = parseFanoutRuns("100x8000x32, 1000x200x8", base)
	if err != nil || len(runs) != 2 {
		t.Fatalf("two runs: %+v, %v", runs, err)
	}
	if r := runs[0]; r.Members != 100 || r.Rate != 8000 || r.Publishers != 32 || r.Size != 256 || r.Duration != 8*time.Second {
		t.Errorf("first run %+v", r)
	}
	if r := runs[1]; r.Members != 1000 || r.Rate != 200 || r.Publishers != 8 {
		t.Errorf("second run %+v", r)
	}
	for _, bad := range []string{"100x8000", "100x0x8", "ax200x8", "100x200x8,", "100x200x8x1"} {
		if _, err := parseFanoutRuns(bad, base); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
