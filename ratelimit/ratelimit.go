// Package ratelimit provides keyed token buckets: each key (a client IP, a
// user, a device) has a bucket of Burst tokens refilled at Rate per second.
// Idle buckets are forgotten so memory stays bounded by active keys.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by string. It is safe for
// concurrent use.
type Limiter struct {
	mu       sync.Mutex
	rate     float64 // tokens per second
	burst    float64
	now      func() time.Time
	buckets  map[string]*bucket
	lastScan time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter allowing perMinute events per minute per key with
// bursts of up to burst events. now may be nil (time.Now).
func New(perMinute, burst int, now func() time.Time) *Limiter {
	return NewPer(perMinute, burst, time.Minute, now)
}

// NewPer returns a limiter allowing n events per period per key with bursts
// of up to burst events (NewPer(30, 30, time.Hour, nil): 30 an hour).
func NewPer(n, burst int, period time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	return &Limiter{
		rate:    float64(n) / period.Seconds(),
		burst:   float64(burst),
		now:     now,
		buckets: make(map[string]*bucket),
	}
}

// SetRate changes the limits at run time (existing buckets keep their tokens).
func (l *Limiter) SetRate(perMinute, burst int) {
	l.SetRatePer(perMinute, burst, time.Minute)
}

// SetRatePer changes the limits to n events per period with bursts of up to
// burst (existing buckets keep their tokens).
func (l *Limiter) SetRatePer(n, burst int, period time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = float64(n) / period.Seconds()
	l.burst = float64(max(burst, 1))
}

// Allow takes n tokens from key's bucket. When there are not enough it takes
// none and reports how long until there will be.
func (l *Limiter) Allow(key string, n int) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.forgetIdle(now)
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
	need := float64(n)
	if b.tokens >= need {
		b.tokens -= need
		return true, 0
	}
	if l.rate <= 0 {
		return false, time.Hour
	}
	wait := time.Duration((need - b.tokens) / l.rate * float64(time.Second))
	return false, max(wait, time.Second)
}

// forgetIdle drops full buckets, at most once a minute.
func (l *Limiter) forgetIdle(now time.Time) {
	if now.Sub(l.lastScan) < time.Minute {
		return
	}
	l.lastScan = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// RetryAfterSeconds rounds a wait up to whole seconds, as Retry-After wants.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
