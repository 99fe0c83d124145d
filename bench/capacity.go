package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CapacityOptions shape the capacity scenario.
type CapacityOptions struct {
	Conns   int // idle SSE connections to hold
	Devices int // devices they are spread over
	Par     int // connections opened at once
}

// Capacity opens Conns idle SSE streams and measures the server's resident
// memory per connection (VmRSS after − before, divided by Conns).
func Capacity(ctx context.Context, env *Env, o CapacityOptions) (*Result, error) {
	if env.PID == 0 {
		return nil, errors.New("capacity needs the server's pid for its RSS: let the bench start the server, or pass --pid")
	}
	if _, err := RaiseFileLimit(); err != nil {
		return nil, fmt.Errorf("raise open-file limit: %w", err)
	}
	o.Devices = min(max(o.Devices, 1), o.Conns)
	accs, err := env.Accounts(ctx, "cap", o.Devices)
	if err != nil {
		return nil, err
	}
	// A fresh client so the streams do not take the pool of the others.
	c := NewClient(env.Client.Base, 16)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	settle := func() (int64, error) {
		time.Sleep(2 * time.Second)
		return RSS(env.PID)
	}
	before, err := settle()
	if err != nil {
		return nil, err
	}
	var (
		open     atomic.Int64
		streams  = make([]*SSE, o.Conns)
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	sem := make(chan struct{}, max(o.Par, 1))
	for i := range o.Conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := OpenSSE(runCtx, c, accs[i%len(accs)].Token, -1)
			if err != nil {
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			streams[i] = s
			open.Add(1)
			// Read (pings and the small backlog) until the stream ends.
			go func() {
				for {
					if _, _, err := s.Next(); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	openTime := time.Since(t0)
	after, err := settle()
	if err != nil {
		return nil, err
	}
	held := open.Load()
	for _, s := range streams {
		if s != nil {
			_ = s.Close()
		}
	}
	res := env.newResult("capacity", map[string]any{"conns": o.Conns, "devices": o.Devices, "open_parallelism": o.Par})
	res.Add("idle SSE connections held", float64(held), "", fmt.Sprintf(">= %d", o.Conns))
	res.Add("server RSS before", float64(before)/(1<<20), "MiB", "")
	res.Add("server RSS with connections", float64(after)/(1<<20), "MiB", "")
	if held > 0 {
		target := ""
		if o.Conns >= 10000 {
			target = "< 50"
		}
		res.Add("RSS per connection", float64(after-before)/float64(held)/1024, "KiB", target)
	}
	res.Add("time to open all", openTime.Seconds(), "s", "")
	if e, _ := firstErr.Load().(string); e != "" {
		res.Notes = append(res.Notes, "first error: "+truncate(e, 200))
	}
	return res, nil
}
