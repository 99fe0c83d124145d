package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FanoutOptions shape the fan-out scenario.
type FanoutOptions struct {
	Members    int           // member devices of the one group, each subscribed
	Rate       int           // messages published per second
	Publishers int           // concurrent publishing members
	Size       int           // bytes per MLS message
	Duration   time.Duration // publishing time
	Transport  string        // "sse" or "longpoll"
}

// FanoutGroup is the fan-out group, built once for both transports.
type FanoutGroup struct {
	g    *Group
	accs []Account
}

func BuildFanoutGroup(ctx context.Context, env *Env, members int) (*FanoutGroup, error) {
	accs, err := env.Accounts(ctx, "fan", members)
	if err != nil {
		return nil, err
	}
	g, err := CreateGroup(ctx, env.Client, accs[0])
	if err != nil {
		return nil, err
	}
	if err := AddMembers(ctx, env.Client, g, accs[1:], 50, env.Par); err != nil {
		return nil, err
	}
	return &FanoutGroup{g: g, accs: accs}, nil
}

// Fanout publishes to one group whose every member device is subscribed
// (over SSE or long-poll) and measures deliveries per second and
// publish-to-receive latency.
func Fanout(ctx context.Context, env *Env, fg *FanoutGroup, o FanoutOptions) (*Result, error) {
	g, accs := fg.g, fg.accs
	gidLen := len(g.ID)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		measuring atomic.Bool
		delivered atomic.Int64
		lastRecv  atomic.Int64
		lat       Latencies
		recvErr   atomic.Value
		wg        sync.WaitGroup
		ready     sync.WaitGroup
		warm      = make([]atomic.Bool, len(accs))
	)
	record := func(i int, local *[]time.Duration, ev []byte) {
		ts, ok := StampOf(ev, gidLen)
		if !ok {
			return
		}
		now := time.Now()
		if !measuring.Load() {
			warm[i].Store(true)
			return
		}
		*local = append(*local, now.Sub(ts))
		delivered.Add(1)
		lastRecv.Store(now.UnixNano())
	}
	// The stream starts at the group's current position: take it from the
	// creator's history (the last commit or Welcome).
	head, err := lastSeq(ctx, env.Client, g, accs[0])
	if err != nil {
		return nil, err
	}
	for i, a := range accs {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() { lat.AddAll(local) }()
			switch o.Transport {
			case "sse":
				s, err := env.OpenSSE(runCtx, i, a.Token, head)
				ready.Done()
				if err != nil {
					recvErr.CompareAndSwap(nil, err.Error())
					return
				}
				defer s.Close()
				for {
					ev, data, err := s.Next()
					if err != nil {
						if runCtx.Err() == nil {
							recvErr.CompareAndSwap(nil, err.Error())
						}
						return
					}
					if ev == "message" {
						record(i, &local, data)
					}
				}
			default:
				ready.Done()
				after := head
				for runCtx.Err() == nil {
					ans, err := Poll(runCtx, env.ClientFor(i), a.Token, after, 30*time.Second)
					if err != nil {
						if runCtx.Err() == nil {
							recvErr.CompareAndSwap(nil, err.Error())
						}
						return
					}
					for _, ev := range ans.Events {
						record(i, &local, ev)
					}
					after = ans.Next
				}
			}
		}()
	}
	ready.Wait()

	// Warm up: one message must reach every subscriber before measuring.
	pub := accs[:max(1, min(o.Publishers, len(accs)))]
	warmDeadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := Send(ctx, env.Client, g, pub[0], MessageBody(g, StampAD(time.Now()), o.Size)); err != nil {
			return nil, fmt.Errorf("warm-up send: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
		all := true
		for i := range warm {
			all = all && warm[i].Load()
		}
		if all {
			break
		}
		if e, _ := recvErr.Load().(string); e != "" {
			return nil, fmt.Errorf("subscriber failed: %s", e)
		}
		if time.Now().After(warmDeadline) {
			return nil, errors.New("not every subscriber received the warm-up message within 15s")
		}
	}

	// Publish on an open-loop schedule: message k is due at start + k/Rate.
	measuring.Store(true)
	total := int(float64(o.Rate) * o.Duration.Seconds())
	due := make(chan time.Time, total)
	var sent, sendFailed atomic.Int64
	var sendLat Latencies
	var pwg sync.WaitGroup
	start := time.Now()
	load := startMachineLoad()
	var cpuStart procCPU
	if env.PID > 0 {
		cpuStart = env.serverCPU()
	}
	for j, a := range pub {
		post, done := env.Poster(j + 1) // publishers and subscribers on different instances where possible
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			defer done()
			var local []time.Duration
			for range due {
				t0 := time.Now()
				err := post(ctx, g.Path+"/messages", a.Token, MessageBody(g, StampAD(t0), o.Size))
				if err != nil {
					sendFailed.Add(1)
					recvErr.CompareAndSwap(nil, "send: "+err.Error())
					continue
				}
				local = append(local, time.Since(t0))
				sent.Add(1)
			}
			sendLat.AddAll(local)
		}()
	}
	for k := range total {
		at := start.Add(time.Duration(float64(k) / float64(o.Rate) * float64(time.Second)))
		time.Sleep(time.Until(at))
		due <- at
	}
	close(due)
	pwg.Wait()
	publishEnd := time.Now()
	var cpuEnd procCPU
	if env.PID > 0 {
		cpuEnd = env.serverCPU()
	}
	// Wait for the deliveries still on their way.
	want := sent.Load() * int64(len(accs))
	for deadline := time.Now().Add(10 * time.Second); delivered.Load() < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	measuring.Store(false)
	cancel()
	wg.Wait()

	res := env.newResult("fanout-"+o.Transport, map[string]any{
		"transport": o.Transport, "members": len(accs), "rate_msgs_per_s": o.Rate, "publishers": len(pub),
		"size_bytes": o.Size, "duration": o.Duration.String(), "client": env.ClientKind(),
	})
	end := time.Unix(0, lastRecv.Load())
	window := end.Sub(start)
	if window <= 0 {
		window = publishEnd.Sub(start)
	}
	target := ""
	if o.Transport == "sse" && o.Members >= 100 {
		target = ">= 50000"
	}
	res.Add("messages published/s", float64(sent.Load())/publishEnd.Sub(start).Seconds(), "msg/s", "")
	res.Add("deliveries/s", float64(delivered.Load())/window.Seconds(), "deliveries/s", target)
	res.Add("deliveries received", float64(delivered.Load()), "", "")
	res.Add("deliveries expected", float64(want), "", "")
	res.Add("failed sends", float64(sendFailed.Load()), "", "")
	p99 := ""
	if o.Transport == "sse" {
		p99 = "< 100"
	}
	res.AddSummary("publish-to-receive", lat.Summary(), p99)
	res.AddSummary("send latency", sendLat.Summary(), "")
	if cpuEnd.total > 0 {
		res.Add("server CPU while publishing", (cpuEnd.total-cpuStart.total).Seconds()/publishEnd.Sub(start).Seconds()*100, "% of one core", "")
	}
	load.add(res)
	if e, _ := recvErr.Load().(string); e != "" {
		res.Notes = append(res.Notes, "first error: "+truncate(e, 200))
	}
	if delivered.Load() < want {
		res.Notes = append(res.Notes, fmt.Sprintf("%d deliveries missing 10 s after publishing ended", want-delivered.Load()))
	}
	return res, nil
}

// lastSeq is the sequence number of the newest event of g that a can see.
func lastSeq(ctx context.Context, c *Client, g *Group, a Account) (int64, error) {
	var after int64
	for {
		var page struct {
			Next    int64 `json:"next"`
			HasMore bool  `json:"has_more"`
		}
		if _, err := c.Do(ctx, "GET", fmt.Sprintf("%s/messages?after=%d&limit=1000", g.Path, after), a.Token, nil, &page); err != nil {
			return 0, err
		}
		after = page.Next
		if !page.HasMore {
			return after, nil
		}
	}
}
