package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// scrape reads /metrics and returns each sample line's value by its name
// with labels, e.g. `sovereign_streams_open{transport="sse"}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterAKnownWorkload: /metrics on the admin address counts
// what a known workload did (requests by operation and status, messages
// and commits accepted and refused by reason, open streams by transport,
// writer batches, database size, Go and process figures), and the public
// address does not serve it.
func TestMetricsAfterAKnownWorkload(t *testing.T) {
	s := testutil.NewServer(t, func(c *config.Config) { c.AdminListen = "127.0.0.1:0" })
	admin := httptest.NewServer(s.App.AdminHandler())
	defer admin.Close()
	if r := s.Do(t, http.MethodGet, "/metrics", "", nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics = %d, want 404", r.StatusCode)
	}

	ctx := context.Background()
	a := s.SeedAccount(t, "alice", models.RoleMember)
	acc := bench.Account{UserID: a.UserID, DeviceID: a.DeviceID, Token: a.Token, Username: a.Username}
	c := bench.NewClient(s.URL, 4)
	g, err := bench.CreateGroup(ctx, c, acc)
	if err != nil {
		t.Fatal(err)
	}

	// An SSE stream stays open while we scrape.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(sctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open SSE: %v %v", err, resp)
	}
	defer resp.Body.Close()

	for range 3 {
		if _, err := bench.Send(ctx, c, g, acc, bench.MessageBody(g, nil, 300)); err != nil {
			t.Fatal(err)
		}
	}
	// A message from an epoch ahead of the group is refused.
	future := &bench.Group{ID: g.ID, Path: g.Path, Epoch: g.Epoch + 5}
	if _, err := bench.Send(ctx, c, future, acc, bench.MessageBody(future, nil, 300)); err == nil {
		t.Fatal("future-epoch message accepted")
	}
	if err := bench.Commit(ctx, c, g, acc, nil); err != nil {
		t.Fatal(err)
	}
	// A commit at an old epoch loses (409).
	stale := map[string]any{"commit": mlstest.PrivateMessage(g.ID, 0, mls.ContentCommit, nil, 64)}
	if _, err := c.Do(ctx, http.MethodPost, g.Path+"/commits", a.Token, stale, nil); err == nil {
		t.Fatal("stale commit accepted")
	}

	// The stream delivers what was sent before the scrape counts it.
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	got := ""
	for strings.Count(got, "\nid: ")+strings.Count(got, "id: ") < 4 && time.Now().Before(deadline) {
		n, err := resp.Body.Read(buf)
		got += string(buf[:n])
		if err == io.EOF {
			break
		}
	}

	var m map[string]float64
	deadline = time.Now().Add(10 * time.Second)
	for {
		m = scrape(t, admin.URL)
		if m[`sovereign_feed_delivery_lag_seconds_count`] >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]float64{
		`sovereign_group_messages_total{kind="message",reason="",result="accepted"}`: 3,
		`sovereign_group_messages_total{kind="commit",reason="",result="accepted"}`:  1,
		`sovereign_http_requests_total{operation="sendMessage",status="201"}`:        3,
		`sovereign_http_requests_total{operation="createGroup",status="201"}`:        1,
		`sovereign_http_requests_total{operation="commitGroup",status="201"}`:        1,
		`sovereign_http_requests_total{operation="commitGroup",status="409"}`:        1,
		`sovereign_http_requests_total{operation="metrics",status="404"}`:            1,
		`sovereign_http_request_duration_seconds_count{operation="sendMessage"}`:     4,
		`sovereign_streams_open{transport="sse"}`:                                    1,
		`sovereign_streams_open{transport="websocket"}`:                              0,
		`sovereign_streams_open{transport="longpoll"}`:                               0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, kind := range []string{"message", "commit"} {
		refused := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, `sovereign_group_messages_total{kind="`+kind+`"`) && strings.Contains(k, `result="refused"`) {
				refused += v
				if strings.Contains(k, `reason=""`) {
					t.Errorf("refusal without a reason: %s", k)
				}
			}
		}
		if refused != 1 {
			t.Errorf("refused %ss = %v, want 1", kind, refused)
		}
	}
	for _, k := range []string{"sovereign_writer_batches_total", "sovereign_writer_use_cases_total", "sovereign_writer_commit_seconds_total",
		"sovereign_database_bytes", "sovereign_feed_delivery_lag_seconds_count", "go_goroutines", "process_resident_memory_bytes",
		"sovereign_hub_events_published_total"} {
		if m[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, m[k])
		}
	}
	if m["sovereign_writer_batches_total"] < 5 {
		t.Errorf("writer batches %v: the workload committed at least 5 use cases", m["sovereign_writer_batches_total"])
	}
}
