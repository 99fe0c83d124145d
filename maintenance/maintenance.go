// Package maintenance runs Sovereign's periodic cleanup: a list of named
// tasks (delete expired key packages, ended sessions, ...) run one after the
// other every interval, from server start until shutdown. Features add their
// own task with Add; each task deletes in short store use cases so the
// writer is never held for long.
package maintenance

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Task is one named cleanup. Run returns how many rows it removed.
type Task struct {
	Name string
	Run  func(ctx context.Context) (int64, error)
}

// Result is the outcome of one task in one pass.
type Result struct {
	Name    string
	Removed int64
	Err     error
}

// Runner runs its tasks every interval between Start and Stop.
type Runner struct {
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	tasks   []Task
	gate    func() bool
	passes  atomic.Uint64
	skipped atomic.Uint64
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a runner with no tasks. log may be nil (slog.Default()).
func New(interval time.Duration, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.Default()
	}
	return &Runner{interval: interval, log: log}
}

// Add appends a task; tasks run in the order added. Tasks added after Start
// join from the next pass.
func (r *Runner) Add(tasks ...Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, tasks...)
}

// SetGate makes the periodic passes run only while gate reports true (the
// instance is the leader of several sharing a database); a pass it refuses
// is skipped, not delayed. RunOnce ignores the gate.
func (r *Runner) SetGate(gate func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate = gate
}

// Passes counts the periodic passes run so far.
func (r *Runner) Passes() uint64 { return r.passes.Load() }

// Skipped counts the periodic passes the gate refused.
func (r *Runner) Skipped() uint64 { return r.skipped.Load() }

// Tasks returns the names of the tasks, in order.
func (r *Runner) Tasks() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(r.tasks))
	for i, t := range r.tasks {
		names[i] = t.Name
	}
	return names
}

// RunOnce runs every task once, in order, and reports each outcome. A
// failing task is logged and does not stop the others; ctx ending stops the
// pass.
func (r *Runner) RunOnce(ctx context.Context) []Result {
	r.mu.Lock()
	tasks := append([]Task(nil), r.tasks...)
	r.mu.Unlock()
	out := make([]Result, 0, len(tasks))
	for _, t := range tasks {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		n, err := t.Run(ctx)
		out = append(out, Result{Name: t.Name, Removed: n, Err: err})
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			r.log.Error("cleanup task failed", "task", t.Name, "removed", n, "err", err)
		case n > 0:
			r.log.Info("cleanup", "task", t.Name, "removed", n, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	return out
}

// Start runs a pass every interval (the first one interval after Start) in
// a goroutine until Stop. Calling Start twice is a no-op.
func (r *Runner) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	go r.loop(ctx)
}

func (r *Runner) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			gate := r.gate
			r.mu.Unlock()
			if gate != nil && !gate() {
				r.skipped.Add(1)
				continue
			}
			r.RunOnce(ctx)
			r.passes.Add(1)
		}
	}
}

// Stop cancels a running pass and waits for the goroutine to end. It is safe
// to call more than once and without Start.
func (r *Runner) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}
