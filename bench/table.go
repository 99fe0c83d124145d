package bench

import (
	"fmt"
	"io"
	"strings"
)

// Issue22Row is one row of the performance table of issue #22 (the
// figures a 2-core machine must reach), with what a run measured.
type Issue22Row struct {
	Figure, Today, Target, Measured string
}

// Issue22Table picks the issue's figures out of a run's results. A figure
// whose scenario did not run with the issue's parameters says how to run
// it; idleRSS is the server's RSS right after start (bytes; 0: unknown).
func Issue22Table(results []*Result, idleRSS int64) []Issue22Row {
	ingest := func(senders int) string {
		for _, r := range results {
			if intParam(r, "concurrency") == senders && intParam(r, "size_bytes") == 128 && strings.HasPrefix(r.Scenario, "ingest") {
				return fmt.Sprintf("%.0f msgs/s (p99 %.1f ms)", r.value("messages accepted/s (durable)"), r.value("send latency p99"))
			}
		}
		return fmt.Sprintf("not run (ingest --concurrency %d --size 128)", senders)
	}
	fanout := func(members int, deliveries bool) string {
		for _, r := range results {
			if r.Params["transport"] != "sse" || intParam(r, "members") != members {
				continue
			}
			if deliveries {
				return fmt.Sprintf("%.0f deliveries/s, receive p99 %.1f ms (%d msgs/s offered)",
					r.value("deliveries/s"), r.value("publish-to-receive p99"), intParam(r, "rate_msgs_per_s"))
			}
			return fmt.Sprintf("%.0f msgs/s published of %d offered, receive p99 %.1f ms",
				r.value("messages published/s"), intParam(r, "rate_msgs_per_s"), r.value("publish-to-receive p99"))
		}
		if members == 1000 {
			return "not run (fanout --fanout-runs 1000x200x8 --transports sse)"
		}
		return fmt.Sprintf("not run (fanout --fanout-runs %dx8000x32 --transports sse)", members)
	}
	capacity := "not run (capacity)"
	held := "not run (capacity --conns 20000 --hold 60s --broadcast; a process open-file limit below 20,000 caps --conns)"
	for _, r := range results {
		if !strings.HasPrefix(r.Scenario, "capacity") {
			continue
		}
		capacity = fmt.Sprintf("%.1f KiB (%d streams)", r.value("RSS per connection"), intParam(r, "conns"))
		if b, _ := r.Params["broadcast"].(bool); b && intParam(r, "conns") >= 19900 {
			held = fmt.Sprintf("%.0f of %d held %.0f s, %.0f received the broadcast, the last %.2f s after the send",
				r.value("idle SSE connections held"), intParam(r, "conns"), floatParam(r, "hold_s"),
				r.value("streams that received the broadcast"), r.value("broadcast: send to last stream"))
		}
	}
	idle := "unknown"
	if idleRSS > 0 {
		// The target is in MB (10^6 bytes); MiB alone reads as met at 29.9.
		idle = fmt.Sprintf("%.1f MiB (%.1f MB)", float64(idleRSS)/(1<<20), float64(idleRSS)/1e6)
	}
	return []Issue22Row{
		{"RSS per idle SSE stream, 10,000 streams", "42.6–50.5 KiB", "≤ 18 KiB", capacity},
		{"20,000 idle streams on this machine", "not measured", "opened, held 60 s, all receive one broadcast within 2 s", held},
		{"1,000 subscribers, 200 msgs/s offered", "136–200 msgs/s achieved, p99 97–175 ms", "200 in every run, receive p99 < 50 ms", fanout(1000, false)},
		{"durable ingest, 8 senders, 128 B", "~3,000 msgs/s", "≥ 6,000", ingest(8)},
		{"durable ingest, 64 senders, 128 B", "6,000–8,500", "≥ 12,000", ingest(64)},
		{"fan-out, 100 subscribers, max rate", "73k–132k deliveries/s", "≥ 200k deliveries/s, receive p99 ≤ 25 ms", fanout(100, true)},
		{"idle server RSS after start", "(report)", "< 30 MB", idle},
	}
}

// PrintIssue22Table writes the rows as a Markdown table.
func PrintIssue22Table(w io.Writer, rows []Issue22Row) {
	fmt.Fprintln(w, "\n== issue #22 targets (2-core machine)")
	fmt.Fprintln(w, "| figure | today | target | measured |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Figure, r.Today, r.Target, r.Measured)
	}
}

// value is the figure named metric (0 when absent).
func (r *Result) value(metric string) float64 {
	for _, row := range r.Rows {
		if row.Metric == metric {
			return row.Value
		}
	}
	return 0
}

// intParam reads an integer parameter of a result (0 when absent).
func intParam(r *Result, k string) int { return int(floatParam(r, k)) }

// floatParam reads a number parameter of a result (0 when absent).
func floatParam(r *Result, k string) float64 {
	switch v := r.Params[k].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case int64:
		return float64(v)
	}
	return 0
}
