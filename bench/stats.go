package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Latencies collects durations from many goroutines.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// AddAll records many durations at once.
func (l *Latencies) AddAll(ds []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, ds...)
	l.mu.Unlock()
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary sorts what was recorded and summarises it.
func (l *Latencies) Summary() Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.d)
	if n == 0 {
		return Summary{}
	}
	slices.Sort(l.d)
	var sum time.Duration
	for _, d := range l.d {
		sum += d
	}
	q := func(p float64) float64 {
		i := int(p*float64(n)+0.5) - 1
		i = min(max(i, 0), n-1)
		return ms(l.d[i])
	}
	return Summary{Count: n, P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(l.d[n-1]), Mean: ms(sum / time.Duration(n))}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryMiB int64   `json:"memory_mib"`
	GoVersion string  `json:"go_version"`
	OS        string  `json:"os"`
	LoadAvg   string  `json:"load_average_at_start"`
	Commit    string  `json:"commit,omitempty"`
	Date      string  `json:"date"`
	Loaded    float64 `json:"-"`
}

// DescribeMachine reads /proc for the CPU model, memory and load average.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format(time.RFC3339)}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				_, _ = fmt.Sscan(strings.TrimSpace(rest), &kb)
				m.MemoryMiB = kb / 1024
			}
		}
	}
	m.LoadAvg = LoadAvg()
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Result is one scenario's outcome, written as JSON.
type Result struct {
	Scenario string         `json:"scenario"`
	Machine  Machine        `json:"machine"`
	Params   map[string]any `json:"params"`
	Rows     []Row          `json:"rows"`
	LoadEnd  string         `json:"load_average_at_end"`
	Notes    []string       `json:"notes,omitempty"`
}

// Row is one measured figure, with its target when the issue sets one.
type Row struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

// Add appends a figure; target is e.g. ">= 5000" or "< 100" (empty: none).
func (r *Result) Add(metric string, v float64, unit, target string) {
	row := Row{Metric: metric, Value: v, Unit: unit, Target: target}
	if target != "" {
		var op string
		var lim float64
		if _, err := fmt.Sscanf(target, "%s %g", &op, &lim); err == nil {
			var met bool
			switch op {
			case ">=":
				met = v >= lim
			case "<":
				met = v < lim
			case "<=":
				met = v <= lim
			case ">":
				met = v > lim
			}
			row.Met = &met
		}
	}
	r.Rows = append(r.Rows, row)
}

// AddSummary appends the p50/p99/max of a latency summary.
func (r *Result) AddSummary(prefix string, s Summary, p99Target string) {
	r.Add(prefix+" p50", s.P50, "ms", "")
	r.Add(prefix+" p90", s.P90, "ms", "")
	r.Add(prefix+" p99", s.P99, "ms", p99Target)
	r.Add(prefix+" max", s.Max, "ms", "")
	r.Add(prefix+" samples", float64(s.Count), "", "")
}

// Print writes the result as a table.
func (r *Result) Print(w io.Writer) {
	if r.LoadEnd == "" {
		r.LoadEnd = LoadAvg()
	}
	fmt.Fprintf(w, "\n== %s (%d CPUs, %s; load %s → %s)\n", r.Scenario, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.LoadAvg, r.LoadEnd)
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(w, "   %s\n", strings.Join(ps, " "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tvalue\tunit\ttarget\t\t")
	for _, row := range r.Rows {
		status := ""
		if row.Met != nil {
			status = "ok"
			if !*row.Met {
				status = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", row.Metric, formatValue(row.Value), row.Unit, row.Target, status)
	}
	_ = tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "   note: %s\n", n)
	}
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && (v >= 100 || v <= -100 || v == 0):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteJSON writes the result to dir/<scenario>.json.
func (r *Result) WriteJSON(dir string) (string, error) {
	r.LoadEnd = LoadAvg()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Scenario+".json")
	return path, os.WriteFile(path, append(raw, '\n'), 0o644)
}
