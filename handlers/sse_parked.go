package handlers

import (
	"context"
	"errors"
	"net"
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
// parkedSet). Runners are as many as runs in flight at once, and they exit
// once there is nothing to run, so 10,000 idle streams cost their sockets
// and a few small structures, not 10,000 parked stacks. A stream that has
// just written lets new events gather for the set's coalescing window
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

// kick makes sure the stream runs once more soon: it hands an idle stream
// to a runner, or tells the running one to look again. It never blocks
// (the hub calls it while publishing).
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
		ps.wroteAt.Store(time.Now().UnixNano())
		h.delivered(evs)
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
		_, _ = ps.conn.Write([]byte("0\r\n\r\n"))
	}
	_ = ps.conn.Close()
	ps.st.close()
	ps.set.remove(ps)
}

// runnerIdle is how long a runner goroutine waits for another stream to
// run before it exits.
const runnerIdle = time.Second

// parkedSet holds a server's parked streams and runs their one shared
// ticker (only while there are any). A kicked stream runs on a runner
// goroutine: one that finished a run and waits (at most runnerIdle) for
// the next, or a new one when none waits. Runners keep their grown stacks
// between runs, so a busy server neither starts a goroutine nor grows a
// stack per delivery, and an idle one has no runner left.
type parkedSet struct {
	stopping context.Context
	// window is how long after a stream's last write its next events wait
	// to be written together (--stream-coalesce; 0: never). Under load one
	// write per event batch is the kernel's writev, half of a busy
	// server's time (docs/benchmarks.md): waiting for the window writes
	// them in fewer system calls, at the cost of at most the window's
	// latency, and only for a stream that has just written.
	window time.Duration
	runq   chan *parkedStream // unbuffered: a send succeeds only to a waiting runner
	bufs   sync.Pool          // of *[]byte: batch buffers (chunkWriter)

	mu      sync.Mutex
	streams map[*parkedStream]struct{}
	running bool // the ticker goroutine runs
	next    uint32
	scratch []*parkedStream // the ticker's snapshot, reused

	laterMu  sync.Mutex
	waiting  []*parkedStream // to run at the next coalescing flush
	spare    []*parkedStream // the previous flush's list, reused
	flushing bool            // a flush is scheduled
}

func newParkedSet(stopping context.Context, window time.Duration) *parkedSet {
	return &parkedSet{
		stopping: stopping,
		window:   window,
		streams:  map[*parkedStream]struct{}{},
		runq:     make(chan *parkedStream),
		bufs:     sync.Pool{New: newChunkBuf},
	}
}

// dispatch runs ps on a waiting runner, or on a new one. It never blocks.
func (p *parkedSet) dispatch(ps *parkedStream) {
	select {
	case p.runq <- ps:
	default:
		go p.runner(ps)
	}
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

// runner runs ps, then the streams handed to it, until none comes within
// runnerIdle.
func (p *parkedSet) runner(ps *parkedStream) {
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		ps.run()
		ps = nil // hold no finished stream while waiting
		idle.Reset(runnerIdle)
		select {
		case ps = <-p.runq:
		case <-idle.C:
			return
		}
	}
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
