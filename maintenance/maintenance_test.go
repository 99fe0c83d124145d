package maintenance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunOnceRunsEveryTaskInOrder(t *testing.T) {
	r := New(time.Hour, nil)
	var order []string
	task := func(name string, n int64, err error) Task {
		return Task{Name: name, Run: func(context.Context) (int64, error) {
			order = append(order, name)
			return n, err
		}}
	}
	boom := errors.New("boom")
	r.Add(task("a", 3, nil), task("b", 0, boom))
	r.Add(task("c", 1, nil))
	res := r.RunOnce(context.Background())
	if len(res) != 3 || res[0] != (Result{Name: "a", Removed: 3}) || res[1].Err != boom || res[2] != (Result{Name: "c", Removed: 1}) {
		t.Fatalf("results = %+v", res)
	}
	if got := r.Tasks(); len(got) != 3 || got[2] != "c" || len(order) != 3 || order[1] != "b" {
		t.Fatalf("tasks %v, order %v", got, order)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := r.RunOnce(ctx); len(res) != 0 {
		t.Fatalf("a cancelled pass ran %d tasks", len(res))
	}
}

func TestStartRunsPeriodicallyUntilStop(t *testing.T) {
	r := New(5*time.Millisecond, nil)
	var runs atomic.Int64
	started := make(chan struct{}, 1)
	r.Add(Task{Name: "count", Run: func(ctx context.Context) (int64, error) {
		runs.Add(1)
		select {
		case started <- struct{}{}:
		default:
		}
		return 0, nil
	}})
	r.Stop() // before Start: no-op
	r.Start()
	r.Start() // twice: no-op
	deadline := time.After(10 * time.Second)
	for runs.Load() < 3 {
		select {
		case <-deadline:
			t.Fatalf("only %d runs", runs.Load())
		case <-started:
		case <-time.After(time.Millisecond):
		}
	}
	r.Stop()
	after := runs.Load()
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != after {
		t.Fatal("tasks ran after Stop")
	}
	r.Stop() // twice: no-op
}

func TestStopCancelsARunningTask(t *testing.T) {
	r := New(time.Millisecond, nil)
	inTask := make(chan struct{}, 1)
	var ended atomic.Bool
	r.Add(Task{Name: "slow", Run: func(ctx context.Context) (int64, error) {
		select {
		case inTask <- struct{}{}:
		default:
		}
		<-ctx.Done()
		ended.Store(true)
		return 0, ctx.Err()
	}})
	r.Start()
	<-inTask
	r.Stop()
	if !ended.Load() {
		t.Fatal("Stop returned before the running task saw cancellation")
	}
}

// TestGateSkipsPassesWhileClosed: a runner whose gate says no (another
// instance leads) runs no task and counts the skipped passes; once the gate
// opens, passes run and are counted.
func TestGateSkipsPassesWhileClosed(t *testing.T) {
	r := New(5*time.Millisecond, nil)
	var runs atomic.Int64
	var open atomic.Bool
	r.Add(Task{Name: "t", Run: func(context.Context) (int64, error) { runs.Add(1); return 0, nil }})
	r.SetGate(open.Load)
	r.Start()
	defer r.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for r.Skipped() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("skipped %d passes in 5 s", r.Skipped())
		}
		time.Sleep(time.Millisecond)
	}
	if runs.Load() != 0 || r.Passes() != 0 {
		t.Fatalf("closed gate: %d task runs, %d passes", runs.Load(), r.Passes())
	}
	open.Store(true)
	for r.Passes() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("open gate: %d passes in 5 s", r.Passes())
		}
		time.Sleep(time.Millisecond)
	}
	if runs.Load() < 2 {
		t.Fatalf("%d passes but %d task runs", r.Passes(), runs.Load())
	}
}
