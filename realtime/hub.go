// Package realtime is Sovereign's in-process event hub. The store announces
// every durably committed event with the devices whose feeds it joins
// (models.Publisher); the hub hands the event to the live subscriptions of
// those devices and wakes them. It knows nothing of SQL or HTTP.
//
// Rules it keeps:
//   - Publishers never block: a publish takes a read lock on the device map
//     and a short per-subscription lock, appends a pointer and signals a
//     channel without waiting.
//   - The committed event (payload included) is carried once and shared by
//     every subscriber as one Item: no per-subscriber copy, no store read
//     per event, and its wire encoding is made once (Item.Wire) and shared.
//   - Each subscription buffers at most a fixed number of events. One that
//     falls behind drops its buffer and is marked lagged: it catches up from
//     the store from its own cursor (see Reader), so it never slows anyone
//     else nor grows memory. A transport that cannot write at all is closed
//     by its write deadline and the client resumes from its cursor.
//   - SessionsEnded ends the subscriptions of those sessions at once.
package realtime

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/sovereign-im/sovereign/models"
)

// DefaultBuffer is the number of events a subscription holds before it is
// marked lagged.
const DefaultBuffer = 256

// Errors a subscription ends with.
var (
	ErrSessionEnded = errors.New("session ended")
	ErrHubClosed    = errors.New("server shutting down")
	ErrUnsubscribed = errors.New("unsubscribed")
)

// Options configure a Hub.
type Options struct {
	// Buffer is the per-subscription buffer size; 0 means DefaultBuffer.
	Buffer int
}

// Hub fans committed events out to per-device subscriptions. It implements
// models.Publisher.
type Hub struct {
	buffer int

	// presence, when set, hears each device's first stream open and its
	// last close (OnPresence).
	presence atomic.Pointer[func(deviceID string, online bool)]

	mu       sync.RWMutex
	devices  map[string]map[*Subscription]struct{}
	sessions map[string]map[*Subscription]struct{}
	closed   bool

	published atomic.Uint64
	lags      atomic.Uint64
}

var _ models.Publisher = (*Hub)(nil)

// New returns an empty hub.
func New(opts Options) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	return &Hub{
		buffer:   opts.Buffer,
		devices:  map[string]map[*Subscription]struct{}{},
		sessions: map[string]map[*Subscription]struct{}{},
	}
}

// Item is one event as streams see it. A published event is one Item shared
// by every subscription it reaches, so its wire encoding is computed once
// for all of them.
type Item struct {
	*models.Event

	wire atomic.Pointer[[]byte]
}

// Wire returns encode(event), computed once and then shared. encode must be
// the same function for every caller (the one wire format). It never
// blocks: streams woken together that all find no encoding yet may each
// compute one (the first stored wins); waiting on a lock instead would make
// a hundred woken streams queue behind one another.
func (it *Item) Wire(encode func(*models.Event) []byte) []byte {
	if p := it.wire.Load(); p != nil {
		return *p
	}
	b := encode(it.Event)
	if it.wire.CompareAndSwap(nil, &b) {
		return b
	}
	return *it.wire.Load()
}

// Subscription receives the events of one device's feed for one stream.
type Subscription struct {
	hub       *Hub
	DeviceID  string
	SessionID string

	wake chan struct{} // capacity 1: "the buffer changed"
	done chan struct{} // closed when the subscription ends
	// notify, when set, is called with every wake signal and when the
	// subscription ends (SetNotify).
	notify atomic.Pointer[func()]

	mu     sync.Mutex
	ring   []*Item
	head   int
	n      int
	lagged bool
	err    error
}

// Subscribe starts buffering the events published for deviceID from now on.
// Subscribe before reading the backlog from the store, so nothing published
// in between is missed; the Reader drops the overlap by seq.
func (h *Hub) Subscribe(deviceID, sessionID string) *Subscription {
	s := &Subscription{
		hub:       h,
		DeviceID:  deviceID,
		SessionID: sessionID,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.end(ErrHubClosed)
		return s
	}
	if add(h.devices, deviceID, s) {
		h.tellPresence(deviceID, true)
	}
	if sessionID != "" {
		add(h.sessions, sessionID, s)
	}
	return s
}

// add reports whether s is the first of its key.
func add(m map[string]map[*Subscription]struct{}, k string, s *Subscription) bool {
	set := m[k]
	first := set == nil
	if first {
		set = map[*Subscription]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
	return first
}

// remove reports whether s was the last of its key.
func remove(m map[string]map[*Subscription]struct{}, k string, s *Subscription) bool {
	if set := m[k]; set != nil {
		if _, ok := set[s]; !ok {
			return false
		}
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
			return true
		}
	}
	return false
}

// OnPresence sets f to hear, for each device, when its first stream opens
// (online true) and when its last one closes (false). f runs under the
// hub's lock, so the calls for one device come in order: it must only
// record and return.
func (h *Hub) OnPresence(f func(deviceID string, online bool)) { h.presence.Store(&f) }

func (h *Hub) tellPresence(deviceID string, online bool) {
	if f := h.presence.Load(); f != nil {
		(*f)(deviceID, online)
	}
}

// Publish hands a committed event to the subscriptions of the given devices
// and wakes them. It never blocks on a subscriber. Events must be published
// in seq order (the store's single writer runs after-commit hooks in commit
// order).
func (h *Hub) Publish(e *models.Event, devices []string) {
	h.published.Add(1)
	var it *Item // made only when someone listens
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, d := range devices {
		for s := range h.devices[d] {
			if it == nil {
				it = &Item{Event: e}
			}
			s.push(it)
		}
	}
}

// Online reports whether the device has an open stream (push skips such
// devices: the stream delivers).
func (h *Hub) Online(deviceID string) bool {
	h.mu.RLock()
	n := len(h.devices[deviceID])
	h.mu.RUnlock()
	return n > 0
}

// SessionsEnded ends every subscription of the given sessions at once.
func (h *Hub) SessionsEnded(sessionIDs []string) {
	var victims []*Subscription
	h.mu.RLock()
	for _, id := range sessionIDs {
		for s := range h.sessions[id] {
			victims = append(victims, s)
		}
	}
	h.mu.RUnlock()
	for _, s := range victims {
		s.Close(ErrSessionEnded)
	}
}

// Close ends every subscription (server shutdown); later subscriptions end
// at once.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	var all []*Subscription
	for _, set := range h.devices {
		for s := range set {
			all = append(all, s)
		}
	}
	h.mu.Unlock()
	for _, s := range all {
		s.Close(ErrHubClosed)
	}
}

// Stats describe the hub at one moment.
type Stats struct {
	Subscriptions int    // live subscriptions
	Buffered      int    // events held in all buffers together
	MaxBuffered   int    // the largest single buffer
	BufferCap     int    // the bound of each buffer
	Published     uint64 // events published since start
	Lags          uint64 // times a subscription overflowed and fell back to the store
}

// Stats reports the hub's current load.
func (h *Hub) Stats() Stats {
	st := Stats{BufferCap: h.buffer, Published: h.published.Load(), Lags: h.lags.Load()}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.devices {
		for s := range set {
			st.Subscriptions++
			s.mu.Lock()
			st.Buffered += s.n
			st.MaxBuffered = max(st.MaxBuffered, s.n)
			s.mu.Unlock()
		}
	}
	return st
}

func (s *Subscription) push(e *Item) {
	s.mu.Lock()
	switch {
	case s.err != nil || s.lagged:
		// Ended, or already catching up from the store: nothing to keep.
		s.mu.Unlock()
		return
	case s.n == len(s.ring) && len(s.ring) < s.hub.buffer:
		// The ring starts empty and grows to the hub's bound, so an idle
		// stream holds no buffer at all.
		ring := make([]*Item, min(max(2*len(s.ring), 8), s.hub.buffer))
		for i := range s.n {
			ring[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = ring, 0
		s.ring[s.n] = e
		s.n++
	case s.n == len(s.ring):
		// Fallen behind: drop the buffer (it is all in the store) so memory
		// stays bounded, and let the reader catch up from its cursor.
		clear(s.ring)
		s.head, s.n = 0, 0
		s.lagged = true
		s.hub.lags.Add(1)
	default:
		s.ring[(s.head+s.n)%len(s.ring)] = e
		s.n++
	}
	s.mu.Unlock()
	s.signal()
}

// signal wakes the subscription's reader: its channel, and its notify
// function when one is set.
func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if f := s.notify.Load(); f != nil {
		(*f)()
	}
}

// SetNotify makes f run whenever Wake is signalled and once when the
// subscription ends, for a reader that parks without a goroutine waiting
// on the channels. f runs on the publisher's goroutine, under the hub's
// read lock: it must not block and must not call back into the hub (it
// should only schedule work).
func (s *Subscription) SetNotify(f func()) { s.notify.Store(&f) }

// Wake is signalled (coalesced) whenever events arrive or the subscription
// lags.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

// Done is closed when the subscription ends.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err tells why the subscription ended (nil while it lives).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Take moves up to max buffered events, oldest first, into dst and returns
// it. lagged reports that events were dropped since the last Take: the
// caller must read the store from its cursor before trusting the buffer.
// Taking clears the flag, so events published afterwards are buffered
// again.
func (s *Subscription) Take(dst []*Item, max int) (_ []*Item, lagged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lagged = s.lagged
	s.lagged = false
	for max > 0 && s.n > 0 {
		dst = append(dst, s.ring[s.head])
		s.ring[s.head] = nil
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		max--
	}
	return dst, lagged
}

// Buffered returns the number of events waiting in the buffer.
func (s *Subscription) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Close ends the subscription with err (ErrUnsubscribed when nil) and
// removes it from the hub. Safe to call more than once.
func (s *Subscription) Close(err error) {
	if err == nil {
		err = ErrUnsubscribed
	}
	if !s.end(err) {
		return
	}
	if f := s.notify.Load(); f != nil {
		(*f)()
	}
	h := s.hub
	h.mu.Lock()
	if remove(h.devices, s.DeviceID, s) {
		h.tellPresence(s.DeviceID, false)
	}
	if s.SessionID != "" {
		remove(h.sessions, s.SessionID, s)
	}
	h.mu.Unlock()
}

func (s *Subscription) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.err = err
	clear(s.ring)
	s.n = 0
	close(s.done)
	return true
}

// Lag marks the live subscriptions of devices (of every device when
// devices is nil) as lagged and wakes them: each drops its buffer and reads
// the store from its own cursor. The store calls it for events committed
// by another server instance sharing the database, which this hub never
// saw published: the store read returns them in seq order, with no gap.
func (h *Hub) Lag(devices []string) {
	var subs []*Subscription
	h.mu.RLock()
	if devices == nil {
		for _, set := range h.devices {
			for s := range set {
				subs = append(subs, s)
			}
		}
	} else {
		for _, d := range devices {
			for s := range h.devices[d] {
				subs = append(subs, s)
			}
		}
	}
	h.mu.RUnlock()
	for _, s := range subs {
		s.mu.Lock()
		if s.err == nil && !s.lagged {
			clear(s.ring)
			s.head, s.n = 0, 0
			s.lagged = true
		}
		s.mu.Unlock()
		s.signal()
	}
}
