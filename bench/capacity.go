package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CapacityOptions shape the capacity scenario.
type CapacityOptions struct {
	Conns   int // idle SSE connections to hold
	Devices int // devices they are spread over
	Par     int // connections opened at once
	// HeadersWait bounds the wait for every stream's response headers
	// (the server may send them with the first ping: --heartbeat).
	HeadersWait time.Duration
	// Hold keeps the connections open after measuring (to profile).
	Hold time.Duration
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
	host := strings.TrimPrefix(strings.TrimPrefix(env.Client.Base, "http://"), "https://")
	if strings.HasPrefix(env.Client.Base, "https://") {
		return nil, errors.New("capacity opens plain TCP connections: use an http:// server")
	}
	settle := func() (int64, error) {
		time.Sleep(2 * time.Second)
		return RSS(env.PID)
	}
	before, err := settle()
	if err != nil {
		return nil, err
	}
	// Raw connections, so that 10,000 of them cost the bench little, and
	// so that opening does not wait for the first bytes of each stream (the
	// server may send its headers only with the first event or ping).
	var (
		opened   atomic.Int64
		refused  atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		conns    []net.Conn
		wg       sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	t0 := time.Now()
	sem := make(chan struct{}, max(o.Par, 1))
	for i := range o.Conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", host, 10*time.Second)
			if err != nil {
				refused.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if _, err := fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
				host, accs[i%len(accs)].Token); err != nil {
				refused.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			go func() {
				br := bufio.NewReaderSize(c, 512)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
						firstErr.CompareAndSwap(nil, err.Error())
					}
					return
				}
				if resp.StatusCode != http.StatusOK {
					refused.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("GET /v1/events: %d", resp.StatusCode))
					return
				}
				opened.Add(1)
				_, _ = io.Copy(io.Discard, br)
			}()
		}()
	}
	wg.Wait()
	// Wait for every stream's headers (at the latest with the first ping).
	for deadline := time.Now().Add(o.HeadersWait); opened.Load()+refused.Load() < int64(o.Conns) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	openTime := time.Since(t0)
	after, err := settle()
	if err != nil {
		return nil, err
	}
	held := opened.Load()
	time.Sleep(o.Hold)
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
	res.Add("time until all answered", openTime.Seconds(), "s", "")
	if e, _ := firstErr.Load().(string); e != "" {
		res.Notes = append(res.Notes, "first error: "+truncate(e, 200))
	}
	return res, nil
}
