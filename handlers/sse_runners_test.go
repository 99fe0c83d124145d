package handlers

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runCounter counts the runs of its fakeRuns and the most that ran at
// once.
type runCounter struct {
	now, most, all atomic.Int64
	wg             sync.WaitGroup
}

// fakeRun stands in for a parked stream: its run takes d.
type fakeRun struct {
	c *runCounter
	d time.Duration
}

func (f *fakeRun) run() {
	c := f.c
	n := c.now.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	if f.d > 0 {
		time.Sleep(f.d)
	}
	c.now.Add(-1)
	c.all.Add(1)
	c.wg.Done()
}

// waitIdle waits until p has no runner and no queued run.
func waitIdle(t *testing.T, p *parkedSet) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.qmu.Lock()
		active, queued := p.active, len(p.queue)
		p.qmu.Unlock()
		if active == 0 && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runners did not wind down: %d active, %d queued", active, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

// While runs wait less than runnersBehind, at most one runner per CPU
// runs; once the oldest queued run has waited that long, more start (never
// more than maxRunners); and the count of active runners returns to zero
// when the queue is empty.
func TestParkedRunnersGiveWayUnderOverload(t *testing.T) {
	bound := int64(max(1, runtime.GOMAXPROCS(0)))

	t.Run("keeping up", func(t *testing.T) {
		c := &runCounter{}
		p := newParkedSet(context.Background(), 0)
		const n = 200
		c.wg.Add(n)
		for range n {
			p.enqueue(&fakeRun{c: c})          // runs that take no time,
			time.Sleep(200 * time.Microsecond) // queued further apart
		}
		c.wg.Wait()
		waitIdle(t, p)
		if got := c.most.Load(); got > bound {
			t.Fatalf("%d runs at once while the runners kept up, want at most %d", got, bound)
		}
	})

	t.Run("behind", func(t *testing.T) {
		c := &runCounter{}
		p := newParkedSet(context.Background(), 0)
		const n = 2000
		d := 2 * time.Millisecond
		c.wg.Add(n)
		start := time.Now()
		for range n {
			p.enqueue(&fakeRun{c: c, d: d})
		}
		c.wg.Wait()
		took := time.Since(start)
		waitIdle(t, p)
		if got := c.all.Load(); got != n {
			t.Fatalf("%d runs, want %d", got, n)
		}
		most := c.most.Load()
		if most <= bound || most > maxRunners {
			t.Fatalf("%d runs at once behind a queue of %d, want more than %d and at most %d", most, n, bound, maxRunners)
		}
		// With the bound kept, 2,000 runs of 2 ms would take 2 s per CPU.
		if limit := time.Duration(n/bound) * d / 4; took > limit {
			t.Fatalf("the queue took %v, want under %v", took, limit)
		}
		t.Logf("%d runs of %v: at most %d at once, %v in all", n, d, most, took)
	})
}
