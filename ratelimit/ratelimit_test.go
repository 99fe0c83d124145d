package ratelimit

import (
	"testing"
	"time"
)

func TestLimiterBurstThenRefill(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(60, 10, func() time.Time { return now })
	for i := 0; i < 10; i++ {
		if ok, _ := l.Allow("ip", 1); !ok {
			t.Fatalf("request %d refused within burst", i+1)
		}
	}
	ok, wait := l.Allow("ip", 1)
	if ok {
		t.Fatal("11th request in a burst allowed")
	}
	if wait != time.Second {
		t.Fatalf("retry after = %v, want 1s at 60/min", wait)
	}
	if ok, _ := l.Allow("other", 1); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow("ip", 1); !ok {
		t.Fatal("refill after 1s did not allow one request")
	}
	if ok, _ := l.Allow("ip", 1); ok {
		t.Fatal("refill gave more than one token per second")
	}
}

func TestLimiterForgetsIdleKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(60, 5, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		l.Allow(string(rune('a'+i%26))+string(rune(i)), 1)
	}
	now = now.Add(2 * time.Minute)
	l.Allow("x", 1)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets kept after idle scan, want 1", n)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {100 * time.Millisecond, 1}, {1500 * time.Millisecond, 2}, {60 * time.Second, 60}} {
		if got := RetryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}
