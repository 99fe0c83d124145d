package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// BenchmarkSSEFanout100 measures end-to-end delivery over real HTTP: 100
// devices of one group each hold an SSE stream; each op commits one 1 KB
// message (durable, synchronous=FULL) and waits until all 100 clients have
// parsed it.
func BenchmarkSSEFanout100(b *testing.B) {
	const n = 100
	s := testutil.NewServer(b, func(c *config.Config) { c.Limits.StreamsPerIP = 2 * n })
	f := testutil.Feed{St: s.Store}
	var ids []string
	var accs []testutil.Account
	for i := range n {
		a := s.SeedAccount(b, fmt.Sprintf("bench%d", i), models.RoleMember)
		accs = append(accs, a)
		ids = append(ids, a.DeviceID)
	}
	g := []byte("bench-group")
	if err := f.CreateGroup(context.Background(), g, ids...); err != nil {
		b.Fatal(err)
	}
	var received atomic.Int64
	all := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, a := range accs {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/events?after=0", nil)
		req.Header.Set("Authorization", "Bearer "+a.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("open stream: %v", err)
		}
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "id: ") {
					if received.Add(1) == n {
						all <- struct{}{}
					}
				}
			}
		}()
	}
	for s.App.Hub().Stats().Subscriptions < n {
		time.Sleep(time.Millisecond)
	}
	payload := make([]byte, 1024)
	var commit, total time.Duration
	b.ResetTimer()
	for range b.N {
		received.Store(0)
		start := time.Now()
		if _, err := f.Send(context.Background(), g, ids[0], models.KindApplication, payload); err != nil {
			b.Fatal(err)
		}
		commit += time.Since(start)
		<-all
		total += time.Since(start)
	}
	b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "µs/commit")
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/commit+fanout")
}

// BenchmarkLongPollWake: a long-poll waits; each op commits one message
// and measures until the HTTP response has arrived.
func BenchmarkLongPollWake(b *testing.B) {
	s := testutil.NewServer(b)
	f := testutil.Feed{St: s.Store}
	a := s.SeedAccount(b, "alice", models.RoleMember)
	g := []byte("g")
	if err := f.CreateGroup(context.Background(), g, a.DeviceID); err != nil {
		b.Fatal(err)
	}
	var commit, total time.Duration
	cursor := int64(0)
	b.ResetTimer()
	for range b.N {
		done := make(chan time.Time, 1)
		go func() {
			req, _ := http.NewRequest("GET", s.URL+"/v1/sync?timeout=30&after="+strconv.FormatInt(cursor, 10), nil)
			req.Header.Set("Authorization", "Bearer "+a.Token)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = bufio.NewReader(resp.Body).ReadString('}')
				resp.Body.Close()
			}
			done <- time.Now()
		}()
		for s.App.Hub().Stats().Subscriptions == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		start := time.Now()
		e, err := f.Send(context.Background(), g, a.DeviceID, models.KindApplication, []byte("x"))
		if err != nil {
			b.Fatal(err)
		}
		commit += time.Since(start)
		total += (<-done).Sub(start)
		cursor = e.Seq
		for s.App.Hub().Stats().Subscriptions != 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(commit.Microseconds())/float64(b.N), "µs/commit")
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/commit+wake")
}
