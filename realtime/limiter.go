package realtime

import (
	"net/netip"
	"sync"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// StreamRetryAfter is the wait suggested to a client refused a stream.
const StreamRetryAfter = 5 * time.Second

// StreamLimiter bounds concurrent streams (SSE, WebSocket and waiting
// long-polls) per client IP and in all.
type StreamLimiter struct {
	perIP, total int

	mu    sync.Mutex
	byIP  map[netip.Addr]int
	count int
}

// NewStreamLimiter allows perIP streams per client address and total in all.
func NewStreamLimiter(perIP, total int) *StreamLimiter {
	return &StreamLimiter{perIP: perIP, total: total, byIP: map[netip.Addr]int{}}
}

// Acquire takes a stream slot for ip. It returns a release function (safe
// to call more than once) or an ERATELIMIT error with RetryAfter.
func (l *StreamLimiter) Acquire(ip netip.Addr) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count >= l.total {
		e := models.Errorf(models.ERATELIMIT, "too_many_streams", "the server has too many open streams; retry later")
		e.RetryAfter = StreamRetryAfter
		return nil, e
	}
	if l.byIP[ip] >= l.perIP {
		e := models.Errorf(models.ERATELIMIT, "too_many_streams", "too many open streams from your address (at most %d); close one or retry later", l.perIP)
		e.RetryAfter = StreamRetryAfter
		return nil, e
	}
	l.byIP[ip]++
	l.count++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.count--
			if l.byIP[ip]--; l.byIP[ip] <= 0 {
				delete(l.byIP, ip)
			}
		})
	}, nil
}

// Open returns the number of streams open now.
func (l *StreamLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}
