package realtime_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/realtime"
)

// emptySource is a store with nothing in it: the benchmarks measure the hub.
type emptySource struct{}

func (emptySource) Feed(context.Context, string, int64, int) ([]*models.Event, bool, error) {
	return nil, false, nil
}

// BenchmarkWakeLatency: one waiting reader; each op publishes one event and
// waits until the reader's Next has returned it (publish → wake → batch).
func BenchmarkWakeLatency(b *testing.B) {
	h := realtime.New(realtime.Options{})
	r := realtime.NewReader(h.Subscribe("dev", "s"), emptySource{}, 0)
	got := make(chan int64)
	go func() {
		for {
			evs, err := r.Next(context.Background(), 256, nil)
			if err != nil {
				close(got)
				return
			}
			got <- evs[len(evs)-1].Seq
		}
	}()
	devices := []string{"dev"}
	b.ResetTimer()
	for i := range b.N {
		h.Publish(&models.Event{Seq: int64(i + 1)}, devices)
		<-got
	}
	b.StopTimer()
	h.Close()
}

// BenchmarkFanout100: 100 devices of one group, each with a reader; each
// op publishes one event and waits until all 100 readers have it.
func BenchmarkFanout100(b *testing.B) {
	const n = 100
	h := realtime.New(realtime.Options{})
	devices := make([]string, n)
	var received atomic.Int64
	all := make(chan struct{}, 1)
	for i := range n {
		devices[i] = fmt.Sprintf("dev-%d", i)
		r := realtime.NewReader(h.Subscribe(devices[i], ""), emptySource{}, 0)
		go func() {
			for {
				evs, err := r.Next(context.Background(), 256, nil)
				if err != nil {
					return
				}
				if received.Add(int64(len(evs))) == int64(n) {
					all <- struct{}{}
				}
			}
		}()
	}
	payload := make([]byte, 1024)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		received.Store(0)
		h.Publish(&models.Event{Seq: int64(i + 1), Payload: payload}, devices)
		<-all
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/fanout")
	b.StopTimer()
	h.Close()
}

// BenchmarkPublishNoSubscribers is the cost the writer pays per event when
// nobody listens to its devices.
func BenchmarkPublishNoSubscribers(b *testing.B) {
	h := realtime.New(realtime.Options{})
	devices := []string{"a", "b", "c", "d"}
	e := &models.Event{Seq: 1}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(e, devices)
	}
}
