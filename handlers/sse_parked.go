package handlers

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2/sse"

	"github.com/sovereign-im/sovereign/realtime"
)

// Parked streams: a detached stream (sse_detached.go) has no goroutine
// while it is idle. What can make it do something — an event or the end
// of its subscription (the subscription's notify function), a heartbeat
// or its session's expiry or the client leaving (the shared ticker), the
// server's shutdown (the ticker, on the Stopping context) — schedules one
// run on a runner goroutine, which does everything due and moves on (see
// parkedSet). Runners are at most one per CPU (more only while some wait
// for a slow client or while they fall behind), and they exit once there
// is nothing to run, so 10,000 idle streams cost their sockets and a few
// small structures, not 10,000 parked stacks. A stream that has just
// written lets new events gather for the set's coalescing window
// before its next run (parkedStream.notify), so a busy stream writes them
// in one system call.

// Run states of a parked stream.
const (
	parkIdle    int32 = iota // no goroutine
	parkRunning              // a goroutine runs step
	parkAgain                // running, and kicked again meanwhile: step once more
	parkDone                 // finished: kicks do nothing
)

// parkedStream is one detached stream.
type parkedStream struct {
	st   *stream
	ctx  context.Context // the request's values, without its end
	conn net.Conn
	set  *parkedSet
	slot uint32 // spreads the peer checks over the ticks

	state   atomic.Int32
	beatAt  atomic.Int64 // when the next heartbeat is due (Unix nanoseconds)
	wroteAt atomic.Int64 // when events were last written (Unix nanoseconds)
	left    atomic.Bool  // the ticker saw the client leave
}

// kick makes sure the stream runs once more soon: it queues a run when
// none is queued or running, or tells the running one to look again. It
// never blocks (the hub calls it while publishing).
func (ps *parkedStream) kick() { ps.schedule(ps.set.dispatch) }

// notify is the subscription's notify function: events arrived, or the
// subscription ended. A stream that wrote events less than the set's
// coalescing window ago is not run at once but at the set's next
// coalescing flush, so that the events arriving meanwhile go out in the
// same write; one that has been quiet runs at once, so a lone message is
// not delayed.
func (ps *parkedStream) notify() {
	if ps.set.recent(ps) {
		ps.schedule(ps.set.later)
		return
	}
	ps.kick()
}

// schedule marks an idle stream running and passes it to start, or tells
// a running one to look again; a stream already told, or finished, is
// left alone.
func (ps *parkedStream) schedule(start func(*parkedStream)) {
	for {
		switch ps.state.Load() {
		case parkIdle:
			if ps.state.CompareAndSwap(parkIdle, parkRunning) {
				start(ps)
				return
			}
		case parkRunning:
			if ps.state.CompareAndSwap(parkRunning, parkAgain) {
				return
			}
		default: // already to look again, or finished
			return
		}
	}
}

// run does what is due until nothing is, then leaves the stream idle (or
// finishes it). Kicked again while it wrote events, it leaves the next
// look to the coalescing flush rather than writing again at once.
func (ps *parkedStream) run() {
	// Kicks before this point are seen by the step below.
	ps.state.Store(parkRunning)
	for {
		if done, ended := ps.step(); done {
			ps.finish(ended)
			return
		}
		if ps.state.CompareAndSwap(parkRunning, parkIdle) {
			return
		}
		ps.state.Store(parkRunning) // kicked while running: look again
		if ps.set.recent(ps) {
			ps.set.later(ps)
			return
		}
	}
}

// step writes the waiting events and a due heartbeat. done reports that
// the stream is over; ended that it ended on the server's side (session
// over, revoked, shutdown) rather than by a failed write or the client
// leaving, as streamLoop's result.
func (ps *parkedStream) step() (done, ended bool) {
	st, h := ps.st, ps.st.h
	if h.d.Stopping != nil && h.d.Stopping.Err() != nil {
		return true, true
	}
	if ps.left.Load() {
		return true, false
	}
	for {
		evs, err := st.reader.TryNext(ps.ctx, streamBatch)
		if err != nil {
			if !errors.Is(err, realtime.ErrSessionEnded) && !errors.Is(err, realtime.ErrHubClosed) {
				h.log().WarnContext(ps.ctx, "event stream", "err", err)
			}
			return true, true
		}
		if len(evs) == 0 {
			break
		}
		if err := st.writeSSE(evs); err != nil {
			return true, false
		}
		now := time.Now()
		ps.wroteAt.Store(now.UnixNano())
		h.deliveredAt(evs, now)
	}
	if st.expired() {
		return true, true
	}
	if now := time.Now(); now.UnixNano() >= ps.beatAt.Load() {
		ps.beatAt.Store(now.Add(st.heartbeat).UnixNano())
		if !st.stillValid(ps.ctx) {
			return true, true
		}
		if err := st.writePing(Ping{Time: h.now().UTC().Format(time.RFC3339)}); err != nil {
			return true, false
		}
	}
	return false, false
}

// finish ends the stream: the chunked body's end when the server ended
// it, then the connection, the subscription and the slot.
func (ps *parkedStream) finish(ended bool) {
	ps.state.Store(parkDone)
	if ended {
		_ = ps.conn.SetWriteDeadline(time.Now().Add(sse.WriteTimeout))
		ps.set.waitWhile(func() { _, _ = ps.conn.Write([]byte("0\r\n\r\n")) })
	}
	_ = ps.conn.Close()
	ps.st.close()
	ps.set.remove(ps)
}

// parkedSet holds a server's parked streams and runs their one shared
// ticker (only while there are any). A kicked stream joins a queue that
// runner goroutines work through, oldest first. While they keep up, the
// runners are at most one per CPU (GOMAXPROCS), each yielding after a run:
// a publish kicks every subscriber at once, and with a goroutine per
// kicked stream the HTTP handlers (the senders' answers among them)
// waited behind hundreds of runnable deliveries; with one runner per CPU
// they wait for one delivery at most (docs/benchmarks.md). When they do
// not keep up (the oldest queued run has waited runnersBehind), the bound
// gives way: more runners start, up to maxRunners, and a late run does not
// yield, so deliveries get the CPU share they had with a goroutine each
// instead of falling behind the hub's buffer, whose catching up from the
// store costs far more per event. A runner never waits for a slow client
// with the others' work queued: its writes try once without blocking, and
// one that must wait (a full socket) is no longer counted, so another
// runner starts for the queue (waitWhile). Runners exit when the queue is
// empty, so an idle server has none.
type parkedSet struct {
	stopping context.Context
	// window is how long after a stream's last write its next events wait
	// to be written together (--stream-coalesce; 0: never). Under load one
	// write per event batch is the kernel's writev, half of a busy
	// server's time (docs/benchmarks.md): waiting for the window writes
	// them in fewer system calls, at the cost of at most the window's
	// latency, and only for a stream that has just written.
	window time.Duration
	bufs   sync.Pool // of *[]byte: batch buffers (chunkWriter)
	epoch  time.Time // queued runs' times are monotonic durations since it

	mu      sync.Mutex
	streams map[*parkedStream]struct{}
	running bool // the ticker goroutine runs
	next    uint32
	scratch []*parkedStream // the ticker's snapshot, reused

	qmu     sync.Mutex
	queue   []queuedRun // kicked streams waiting for a runner, oldest first
	active  int         // runners not waiting for a client
	runners int         // the bound of active while runners keep up (GOMAXPROCS)

	laterMu  sync.Mutex
	waiting  []*parkedStream // to run at the next coalescing flush
	spare    []*parkedStream // the previous flush's list, reused
	flushing bool            // a flush is scheduled
}

// runnable is what the runners run: a parked stream (tests use others).
type runnable interface{ run() }

// queuedRun is a kicked stream and when it joined the queue.
type queuedRun struct {
	r  runnable
	at time.Duration // since parkedSet.epoch
}

const (
	// runnersBehind is how long the oldest queued run may wait before the
	// runners count as not keeping up and their bound gives way. A few
	// milliseconds: well under the hub buffer's 256 events at the highest
	// publish rates (32 ms at 8,000 events/s), well over one run (tens of
	// microseconds). (Judging by the head stream's buffered events
	// instead was measured and did not keep streams from lagging:
	// docs/benchmarks.md.)
	runnersBehind = 5 * time.Millisecond
	// maxRunners bounds the runners even when they do not keep up: enough
	// for a fair share of the CPUs against the request handlers, far fewer
	// than the streams a busy server holds.
	maxRunners = 256
)

func newParkedSet(stopping context.Context, window time.Duration) *parkedSet {
	return &parkedSet{
		stopping: stopping,
		window:   window,
		streams:  map[*parkedStream]struct{}{},
		bufs:     sync.Pool{New: newChunkBuf},
		epoch:    time.Now(),
		runners:  max(1, runtime.GOMAXPROCS(0)),
	}
}

// now is the monotonic time since the set's epoch.
func (p *parkedSet) now() time.Duration { return time.Since(p.epoch) }

// behind reports whether the oldest queued run has waited runnersBehind
// by now. p.qmu is held.
func (p *parkedSet) behind(now time.Duration) bool {
	return len(p.queue) > 0 && now-p.queue[0].at >= runnersBehind
}

// startRunner reports whether another runner should start for the queue,
// counting it as active if so: below the bound, or, while the runners are
// behind, below maxRunners. p.qmu is held.
func (p *parkedSet) startRunner(now time.Duration) bool {
	if len(p.queue) == 0 {
		return false
	}
	if p.active < p.runners || (p.active < maxRunners && p.behind(now)) {
		p.active++
		return true
	}
	return false
}

// dispatch queues ps for a runner, starting one when the queue needs it.
// It never blocks.
func (p *parkedSet) dispatch(ps *parkedStream) { p.enqueue(ps) }

// enqueue queues r for a runner, starting one when the queue needs it.
func (p *parkedSet) enqueue(r runnable) {
	now := p.now()
	p.qmu.Lock()
	p.queue = append(p.queue, queuedRun{r: r, at: now})
	start := p.startRunner(now)
	p.qmu.Unlock()
	if start {
		go p.runner()
	}
}

// runner runs queued streams until the queue is empty, or until runners
// are more than the bound and keep up again.
func (p *parkedSet) runner() {
	for {
		now := p.now()
		p.qmu.Lock()
		if len(p.queue) == 0 || (p.active > p.runners && !p.behind(now)) {
			p.active--
			if len(p.queue) == 0 {
				p.queue = p.queue[:0:0] // let a burst's backing array go
			}
			p.qmu.Unlock()
			return
		}
		q := p.queue[0]
		p.queue[0] = queuedRun{}
		p.queue = p.queue[1:]
		late := now-q.at >= runnersBehind
		start := late && p.startRunner(now)
		p.qmu.Unlock()
		if start {
			go p.runner()
		}
		q.r.run()
		if !late {
			runtime.Gosched() // a runnable request handler goes first
		}
	}
}

// waitWhile runs write, which may wait for a slow client, with the calling
// runner not counted as active meanwhile: another runner starts if streams
// are queued, so they are not held up by this one.
func (p *parkedSet) waitWhile(write func()) {
	now := p.now()
	p.qmu.Lock()
	p.active--
	start := p.startRunner(now)
	p.qmu.Unlock()
	if start {
		go p.runner()
	}
	write()
	p.qmu.Lock()
	p.active++
	p.qmu.Unlock()
}

// recent reports whether ps wrote events less than the coalescing window
// ago (so its next run waits for the window).
func (p *parkedSet) recent(ps *parkedStream) bool {
	return p.window > 0 && time.Now().UnixNano()-ps.wroteAt.Load() < int64(p.window)
}

// later runs ps (already marked running) at the next coalescing flush,
// which it schedules when none is.
func (p *parkedSet) later(ps *parkedStream) {
	p.laterMu.Lock()
	p.waiting = append(p.waiting, ps)
	start := !p.flushing
	p.flushing = true
	p.laterMu.Unlock()
	if start {
		time.AfterFunc(p.window, p.flush)
	}
}

// flush dispatches the streams that waited for the coalescing window.
func (p *parkedSet) flush() {
	p.laterMu.Lock()
	list := p.waiting
	p.waiting, p.spare = p.spare[:0], nil
	p.flushing = false
	p.laterMu.Unlock()
	for _, ps := range list {
		p.dispatch(ps)
	}
	clear(list)
	p.laterMu.Lock()
	if p.spare == nil {
		p.spare = list[:0]
	}
	p.laterMu.Unlock()
}

// park adds a detached stream and runs it once (its backlog, and whatever
// was published before its notify function was set).
func (p *parkedSet) park(ps *parkedStream) {
	ps.set = p
	ps.beatAt.Store(time.Now().Add(ps.st.heartbeat).UnixNano())
	p.mu.Lock()
	p.streams[ps] = struct{}{}
	ps.slot = p.next
	p.next++
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.tick()
	}
	ps.st.reader.Subscription().SetNotify(ps.notify)
	ps.kick()
}

func (p *parkedSet) remove(ps *parkedStream) {
	p.mu.Lock()
	delete(p.streams, ps)
	p.mu.Unlock()
}

// tick runs every streamTick while streams are parked: it kicks each
// stream whose heartbeat is due or whose session expired, peeks at a third
// of the sockets each tick (peerCheckTicks) to tell a client that left, and
// kicks every stream once when the server begins to stop.
func (p *parkedSet) tick() {
	t := time.NewTicker(streamTick)
	defer t.Stop()
	var stop <-chan struct{}
	if p.stopping != nil {
		stop = p.stopping.Done()
	}
	for round := uint32(0); ; round++ {
		all := false
		select {
		case <-t.C:
		case <-stop:
			stop, all = nil, true
		}
		p.mu.Lock()
		if len(p.streams) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		list := p.scratch[:0]
		for ps := range p.streams {
			list = append(list, ps)
		}
		p.mu.Unlock()
		now := time.Now().UnixNano()
		for _, ps := range list {
			due := all || now >= ps.beatAt.Load() || ps.st.expired()
			if !due && (ps.slot+round)%peerCheckTicks == 0 && peerGone(ps.conn) {
				ps.left.Store(true)
				due = true
			}
			if due {
				ps.kick()
			}
		}
		clear(list)
		p.scratch = list[:0]
	}
}
