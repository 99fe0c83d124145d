package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
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
	// Burst writes every request without waiting for answers: a
	// reconnect storm, all requests queued in the server at once.
	Burst bool
	// Broadcast puts every device in one group and, after Hold, sends one
	// message to it and times its arrival on every stream.
	Broadcast bool
}

// answerWait is how long an opening holds its place among the Par
// connections being opened, at most, before the next one starts.
const answerWait = 5 * time.Second

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
	var bg *Group
	if o.Broadcast {
		if bg, err = CreateGroup(ctx, env.Client, accs[0]); err == nil {
			err = AddMembers(ctx, env.Client, bg, accs[1:], 50, env.Par)
		}
		if err != nil {
			return nil, fmt.Errorf("broadcast group: %w", err)
		}
	}
	// The broadcast's arrival: streams count the first event above
	// threshold (set before the send; the backlog's Welcomes are below it).
	var (
		threshold atomic.Int64
		received  atomic.Int64
		lastAt    atomic.Int64 // UnixNano of the latest first arrival
	)
	threshold.Store(math.MaxInt64)
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
			answered := make(chan struct{})
			go func() {
				br := bufio.NewReaderSize(c, 512)
				resp, err := http.ReadResponse(br, nil)
				close(answered)
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
				if !o.Broadcast {
					_, _ = io.Copy(io.Discard, resp.Body)
					return
				}
				watchBroadcast(resp.Body, &threshold, func() {
					received.Add(1)
					now := time.Now().UnixNano()
					for {
						if l := lastAt.Load(); l >= now || lastAt.CompareAndSwap(l, now) {
							return
						}
					}
				})
				_, _ = io.Copy(io.Discard, resp.Body)
			}()
			// A connection counts as being opened until its response
			// head arrives (or answerWait passes: a server may send it
			// only with the first event or ping), so at most Par
			// requests wait in the server at once.
			if !o.Burst {
				select {
				case <-answered:
				case <-time.After(answerWait):
				}
			}
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
	var bcast time.Duration
	if bg != nil {
		seq, err := lastSeq(ctx, env.Client, bg, accs[0])
		if err != nil {
			return nil, fmt.Errorf("broadcast cursor: %w", err)
		}
		threshold.Store(seq)
		t1 := time.Now()
		if _, err := Send(ctx, env.Client, bg, accs[0], MessageBody(bg, nil, 256)); err != nil {
			return nil, fmt.Errorf("broadcast: %w", err)
		}
		for deadline := t1.Add(30 * time.Second); received.Load() < held && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		bcast = time.Unix(0, lastAt.Load()).Sub(t1)
	}
	res := env.newResult("capacity", map[string]any{"conns": o.Conns, "devices": o.Devices, "open_parallelism": o.Par,
		"burst": o.Burst, "hold_s": o.Hold.Seconds(), "broadcast": o.Broadcast})
	res.Add("idle SSE connections held", float64(held), "", fmt.Sprintf(">= %d", o.Conns))
	res.Add("server RSS before", float64(before)/(1<<20), "MiB", "")
	res.Add("server RSS with connections", float64(after)/(1<<20), "MiB", "")
	if held > 0 {
		target := ""
		if o.Conns >= 10000 {
			target = "<= 18"
		}
		res.Add("RSS per connection", float64(after-before)/float64(held)/1024, "KiB", target)
	}
	res.Add("time until all answered", openTime.Seconds(), "s", "")
	if bg != nil {
		res.Add("streams that received the broadcast", float64(received.Load()), "", fmt.Sprintf(">= %d", held))
		res.Add("broadcast: send to last stream", bcast.Seconds(), "s", "< 2")
	}
	if e, _ := firstErr.Load().(string); e != "" {
		res.Notes = append(res.Notes, "first error: "+truncate(e, 200))
	}
	return res, nil
}

// watchBroadcast reads an SSE body until the first event whose id is above
// threshold, then calls got.
func watchBroadcast(body io.Reader, threshold *atomic.Int64, got func()) {
	br := bufio.NewReaderSize(body, 512)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
		if id, ok := strings.CutPrefix(string(line), "id: "); ok {
			if seq, perr := strconv.ParseInt(strings.TrimSpace(id), 10, 64); perr == nil && seq > threshold.Load() {
				got()
				return
			}
		}
	}
}
