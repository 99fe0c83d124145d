package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// IngestOptions shape the ingest scenario.
type IngestOptions struct {
	Concurrency int           // concurrent senders, each its own user and device
	Groups      int           // groups the senders are spread over
	Size        int           // bytes per MLS message
	Warmup      time.Duration // sending before measuring
	Duration    time.Duration // measured sending
	// PushSubscribed is the fraction of the senders' devices that have a
	// Web Push subscription (to env.Push); none of them keeps a stream
	// open, so each message queues a push for its subscribed recipients.
	PushSubscribed float64
}

// Ingest measures messages accepted per second (durably: the server
// answers 201 only after the commit's fsync) with Concurrency senders, and
// the send latency.
func Ingest(ctx context.Context, env *Env, o IngestOptions) (*Result, error) {
	o.Groups = min(max(o.Groups, 1), o.Concurrency)
	accs, err := env.Accounts(ctx, "ing", o.Concurrency)
	if err != nil {
		return nil, err
	}
	subscribed := 0
	if o.PushSubscribed > 0 {
		if env.Push == nil {
			return nil, fmt.Errorf("ingest: --push-subscribed needs the push receiver (not available with --url)")
		}
		subscribed = int(float64(len(accs))*o.PushSubscribed + 0.5)
		for _, a := range accs[:subscribed] {
			if err := env.Push.Subscribe(ctx, env.Client, a); err != nil {
				return nil, err
			}
		}
	}
	groups := make([]*Group, o.Groups)
	for gi := range groups {
		var members []Account
		for i := gi; i < len(accs); i += o.Groups {
			members = append(members, accs[i])
		}
		g, err := CreateGroup(ctx, env.Client, members[0])
		if err != nil {
			return nil, err
		}
		if len(members) > 1 {
			if err := AddMembers(ctx, env.Client, g, members[1:], 50, env.Par); err != nil {
				return nil, err
			}
		}
		groups[gi] = g
	}

	var (
		measuring atomic.Bool
		ok        atomic.Int64
		failed    sync.Map // status → *atomic.Int64
		lat       Latencies
		firstErr  atomic.Value
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, a := range accs {
		g := groups[i%o.Groups]
		post, done := env.Poster(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done()
			bodies := make([][]byte, 16)
			for j := range bodies {
				bodies[j] = MessageBody(g, nil, o.Size)
			}
			local := make([]time.Duration, 0, 4096)
			for n := 0; runCtx.Err() == nil; n++ {
				t0 := time.Now()
				err := post(runCtx, g.Path+"/messages", a.Token, bodies[n%len(bodies)])
				d := time.Since(t0)
				if runCtx.Err() != nil {
					break
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					var se *StatusError
					key := 0
					if errors.As(err, &se) {
						key = se.Status
					}
					c, _ := failed.LoadOrStore(key, new(atomic.Int64))
					c.(*atomic.Int64).Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
				local = append(local, d)
			}
			lat.AddAll(local)
		}()
	}
	time.Sleep(o.Warmup)
	measuring.Store(true)
	start := time.Now()
	var cpuStart, cpuEnd procCPU
	if env.PID > 0 {
		cpuStart = env.serverCPU()
	}
	selfStart, _ := readProcCPU(os.Getpid())
	load := startMachineLoad()
	wsStart, haveWS := env.writerStats(ctx)
	var pushStart int64
	if env.Push != nil {
		pushStart = env.Push.Pushes()
	}
	time.Sleep(o.Duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	var pushes int64
	if env.Push != nil {
		pushes = env.Push.Pushes() - pushStart
	}
	wsEnd, haveWSEnd := env.writerStats(ctx)
	if env.PID > 0 {
		cpuEnd = env.serverCPU()
	}
	selfEnd, _ := readProcCPU(os.Getpid())
	cancel()
	wg.Wait()

	res := env.newResult("ingest", map[string]any{
		"concurrency": o.Concurrency, "groups": o.Groups, "size_bytes": o.Size,
		"duration": o.Duration.String(), "warmup": o.Warmup.String(),
		"push_subscribed": o.PushSubscribed, "push_subscribed_devices": subscribed,
		"client": env.ClientKind(),
	})
	rate := float64(ok.Load()) / elapsed.Seconds()
	res.Add("messages accepted/s (durable)", rate, "msg/s", ">= 5000")
	res.AddSummary("send latency", lat.Summary(), "")
	if env.Push != nil {
		res.Add("push sends/s (received by the push service)", float64(pushes)/elapsed.Seconds(), "push/s", "")
	}
	var nfail int64
	failed.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		nfail += n
		res.Add(fmt.Sprintf("failed sends (status %v)", k), float64(n), "", "")
		return true
	})
	if e, _ := firstErr.Load().(string); e != "" {
		res.Notes = append(res.Notes, "first failure: "+truncate(e, 200))
	}
	if env.PID > 0 && cpuEnd.total > 0 {
		cpu := (cpuEnd.total - cpuStart.total).Seconds()
		res.Add("server CPU", cpu/elapsed.Seconds()*100, "% of one core", "")
		if cpu > 0 {
			res.Add("messages per server CPU-second", float64(ok.Load())/cpu, "msg/CPU-s", "")
		}
	}
	res.Add("bench client CPU", (selfEnd.total-selfStart.total).Seconds()/elapsed.Seconds()*100, "% of one core", "")
	load.add(res)
	if haveWS && haveWSEnd {
		addWriterStats(res, wsStart, wsEnd, elapsed)
	}
	return res, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
