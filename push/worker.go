package push

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sovereign-im/sovereign/egress"
	"github.com/sovereign-im/sovereign/metrics"
	"github.com/sovereign-im/sovereign/store"
)

// Payload is the plaintext of every push: a wake-up and nothing else. The
// app learns what happened by fetching its feed.
var Payload = []byte(`{"t":"wake"}`)

// Topic is the RFC 8030 Topic of every push: a push service holding an
// undelivered push for a device replaces it with the newer one, so a phone
// that was offline wakes once. It is the same for every device and event.
const Topic = "wake"

// Defaults of Config.
const (
	DefaultMinGap      = 5 * time.Second
	DefaultConcurrency = 8
	DefaultTimeout     = 15 * time.Second
	DefaultLease       = time.Minute
	DefaultMaxAttempts = 8
	// TTLHigh is how long a push service keeps an undelivered push for a
	// message or a welcome; TTLNormal for the rest.
	TTLHigh   = 24 * time.Hour
	TTLNormal = time.Hour
	// maxBackoff bounds the wait between retries.
	maxBackoff = time.Hour
)

// Config configures a Worker.
type Config struct {
	// Contact is the VAPID "sub" claim: mailto:… or https:….
	Contact string
	// Policy checks every endpoint the worker calls.
	Policy *egress.Policy
	// Online reports whether a device has an open stream (no push then).
	Online func(deviceID string) bool
	// MinGap is the least time between two pushes to one device while the
	// first stays undelivered; 0 means DefaultMinGap.
	MinGap time.Duration
	// Concurrency bounds the sends in flight; 0 means DefaultConcurrency.
	Concurrency int
	// Timeout bounds one send; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is how many temporary failures in a row give a push up.
	MaxAttempts int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the worker's logs; nil means slog.Default().
	Log *slog.Logger
	// Metrics registers the worker's metrics; nil registers nowhere.
	Metrics *metrics.Registry
}

// Worker drains the push outbox.
type Worker struct {
	st     *store.Store
	vapid  VAPID
	cfg    Config
	client *http.Client
	log    *slog.Logger

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	lastSent map[string]time.Time

	sends    *prometheus.CounterVec
	duration prometheus.Observer
}

// NewWorker returns a worker for st; Start runs it.
func NewWorker(st *store.Store, vapid VAPID, cfg Config) *Worker {
	if cfg.MinGap <= 0 {
		cfg.MinGap = DefaultMinGap
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Policy == nil {
		cfg.Policy = &egress.Policy{}
	}
	if cfg.Online == nil {
		cfg.Online = func(string) bool { return false }
	}
	w := &Worker{
		st: st, vapid: vapid, cfg: cfg, log: cfg.Log,
		client:   cfg.Policy.Client(cfg.Timeout),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		sem:      make(chan struct{}, cfg.Concurrency),
		lastSent: make(map[string]time.Time),
		sends: cfg.Metrics.Counter("push_sends_total",
			"Web Push sends by result: sent (accepted by the push service), gone (404/410: subscription deleted), retry (429/5xx/network: tried again later), dropped (refused for good, expired or given up), refused (endpoint not allowed by the egress policy: subscription deleted), skipped (the device had an open stream).",
			"result"),
		duration: cfg.Metrics.Histogram("push_send_duration_seconds", "Time for a push service to answer one send.",
			metrics.LatencyBuckets).WithLabelValues(),
	}
	for _, r := range []string{"sent", "gone", "retry", "dropped", "refused", "skipped"} {
		w.sends.WithLabelValues(r)
	}
	return w
}

// Kick wakes the worker (the store calls it after a commit queued pushes).
// It never blocks.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Start releases stale leases and runs the worker until Stop.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.st.ResetPushLeases(ctx); err != nil {
		return err
	}
	w.st.OnPushQueued(w.Kick)
	go w.loop()
	w.Kick() // pushes left from before a restart
	return nil
}

// Stop ends the loop and waits for the sends in flight.
func (w *Worker) Stop() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	<-w.done
	w.wg.Wait()
}

func (w *Worker) loop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-timer.C:
		}
		w.drain()
		// Sleep until the next row is due (a kick comes sooner).
		wait := 30 * time.Second
		if at, ok, err := w.st.NextPushDue(context.Background()); err != nil {
			w.log.Warn("push: read outbox", "err", err)
			wait = time.Second
		} else if ok {
			wait = min(wait, max(at.Sub(w.cfg.Now()), 20*time.Millisecond))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// drain claims due rows while there are free send slots.
func (w *Worker) drain() {
	ctx := context.Background()
	for {
		free := cap(w.sem) - len(w.sem)
		if free == 0 {
			return // a finishing send kicks again
		}
		jobs, err := w.st.ClaimPushes(ctx, free, DefaultLease)
		if err != nil {
			if !errors.Is(err, store.ErrClosed) {
				w.log.Warn("push: claim", "err", err)
			}
			return
		}
		if len(jobs) == 0 {
			return
		}
		for _, j := range jobs {
			w.sem <- struct{}{}
			w.wg.Add(1)
			go func() {
				defer func() { <-w.sem; w.wg.Done(); w.Kick() }()
				w.handle(ctx, j)
			}()
		}
		w.pruneLastSent()
	}
}

func (w *Worker) pruneLastSent() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lastSent) < 4096 {
		return
	}
	cut := w.cfg.Now().Add(-w.cfg.MinGap)
	for d, t := range w.lastSent {
		if t.Before(cut) {
			delete(w.lastSent, d)
		}
	}
}

func (w *Worker) finish(ctx context.Context, j store.PushJob, o store.PushOutcome, until time.Time, result string) {
	w.sends.WithLabelValues(result).Inc()
	if err := w.st.FinishPush(ctx, j, o, until); err != nil && !errors.Is(err, store.ErrClosed) {
		w.log.Warn("push: record outcome", "device_id", j.DeviceID, "err", err)
	}
}

// handle sends one claimed push and records what happened.
func (w *Worker) handle(ctx context.Context, j store.PushJob) {
	now := w.cfg.Now()
	if w.cfg.Online(j.DeviceID) {
		w.finish(ctx, j, store.PushDrop, now, "skipped")
		return
	}
	// With several instances the device may stream from another one.
	elsewhere, err := w.st.StreamOpenElsewhere(ctx, j.DeviceID)
	if err != nil {
		w.log.Warn("push: check streams on other instances (tried again)", "err", err)
		w.finish(ctx, j, store.PushDefer, now.Add(w.cfg.MinGap), "retry")
		return
	}
	if elsewhere {
		w.finish(ctx, j, store.PushDrop, now, "skipped")
		return
	}
	ttl := TTLNormal
	urgency := webpush.UrgencyNormal
	if j.Urgency == store.PushUrgencyHigh {
		ttl, urgency = TTLHigh, webpush.UrgencyHigh
	}
	if now.Sub(j.CreatedAt) > ttl {
		w.finish(ctx, j, store.PushDrop, now, "dropped")
		return
	}
	w.mu.Lock()
	last, ok := w.lastSent[j.DeviceID]
	w.mu.Unlock()
	if ok && now.Sub(last) < w.cfg.MinGap {
		// Coalesce: one push per MinGap while the device stays away.
		if err := w.st.FinishPush(ctx, j, store.PushDefer, last.Add(w.cfg.MinGap)); err != nil && !errors.Is(err, store.ErrClosed) {
			w.log.Warn("push: defer", "device_id", j.DeviceID, "err", err)
		}
		return
	}
	sub := &webpush.Subscription{Endpoint: j.Subscription.Endpoint,
		Keys: webpush.Keys{P256dh: j.Subscription.P256dh, Auth: j.Subscription.Auth}}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	start := time.Now()
	resp, err := webpush.SendNotificationWithContext(sctx, Payload, sub, &webpush.Options{
		HTTPClient:      w.client,
		Subscriber:      subscriber(w.cfg.Contact),
		Topic:           Topic,
		TTL:             int(ttl / time.Second),
		Urgency:         urgency,
		VAPIDPublicKey:  w.vapid.Public,
		VAPIDPrivateKey: w.vapid.Private,
	})
	w.duration.Observe(time.Since(start).Seconds())
	now = w.cfg.Now()
	if err != nil {
		if egress.IsRefused(err) {
			w.log.Info("push: endpoint refused by the egress policy; subscription deleted", "device_id", j.DeviceID, "err", err)
			w.finish(ctx, j, store.PushGone, now, "refused")
			return
		}
		w.retry(ctx, j, now, 0, "err", err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		w.mu.Lock()
		w.lastSent[j.DeviceID] = now
		w.mu.Unlock()
		w.finish(ctx, j, store.PushSent, now.Add(w.cfg.MinGap), "sent")
	case code == http.StatusNotFound || code == http.StatusGone:
		w.log.Info("push: subscription gone; deleted", "device_id", j.DeviceID, "status", code)
		w.finish(ctx, j, store.PushGone, now, "gone")
	case code == http.StatusTooManyRequests || code >= 500:
		w.retry(ctx, j, now, retryAfter(resp.Header.Get("Retry-After"), now), "status", strconv.Itoa(code))
	default:
		w.log.Warn("push: push service refused the push", "device_id", j.DeviceID, "status", code)
		w.finish(ctx, j, store.PushDrop, now, "dropped")
	}
}

// retry schedules another attempt: after Retry-After when the push service
// gave one, else exponential backoff with jitter; past MaxAttempts the push
// is given up.
func (w *Worker) retry(ctx context.Context, j store.PushJob, now time.Time, after time.Duration, why ...any) {
	if j.Attempts+1 >= w.cfg.MaxAttempts {
		w.log.Warn("push: giving up after repeated failures", append([]any{"device_id", j.DeviceID, "attempts", j.Attempts + 1}, why...)...)
		w.finish(ctx, j, store.PushDrop, now, "dropped")
		return
	}
	if after <= 0 {
		after = min(time.Second<<min(j.Attempts, 20), maxBackoff)
		after += time.Duration(rand.Int64N(int64(after)/2 + 1))
	}
	after = min(after, maxBackoff)
	w.log.Debug("push: retry later", append([]any{"device_id", j.DeviceID, "in", after}, why...)...)
	w.finish(ctx, j, store.PushRetry, now.Add(after), "retry")
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// subscriber is the contact as webpush-go takes it: it prefixes anything
// not starting with "https:" with "mailto:", so a mailto: is given bare.
func subscriber(contact string) string {
	return strings.TrimPrefix(contact, "mailto:")
}
