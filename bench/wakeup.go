package bench

import (
	"context"
	"fmt"
	"time"
)

// WakeupOptions shape the wake-up scenario.
type WakeupOptions struct {
	Samples int           // messages sent while the poll waits
	Park    time.Duration // how long the poll waits before the send
}

// Wakeup measures how fast a waiting long-poll answers when a message
// arrives: one device long-polls (GET /v1/sync) with nothing pending,
// another sends to their group, and the poll's answer time is compared
// with the send's start and its 201.
func Wakeup(ctx context.Context, env *Env, o WakeupOptions) (*Result, error) {
	accs, err := env.Accounts(ctx, "wake", 2)
	if err != nil {
		return nil, err
	}
	g, err := CreateGroup(ctx, env.Client, accs[0])
	if err != nil {
		return nil, err
	}
	if err := AddMembers(ctx, env.Client, g, accs[1:], 50, 1); err != nil {
		return nil, err
	}
	sender, poller := accs[0], accs[1]
	// Catch up the poller's feed (its Welcome, the commit).
	var after int64
	for {
		ans, err := Poll(ctx, env.Client, poller.Token, after, 0)
		if err != nil {
			return nil, err
		}
		after = ans.Next
		if !ans.HasMore {
			break
		}
	}
	var fromSend, fromAck, sendLat Latencies
	for range o.Samples {
		type answer struct {
			at  time.Time
			ans *PollAnswer
			err error
		}
		done := make(chan answer, 1)
		go func() {
			ans, err := Poll(ctx, env.Client, poller.Token, after, 30*time.Second)
			done <- answer{time.Now(), ans, err}
		}()
		time.Sleep(o.Park)
		body := MessageBody(g, StampAD(time.Now()), 256)
		t0 := time.Now()
		if _, err := Send(ctx, env.Client, g, sender, body); err != nil {
			return nil, err
		}
		t1 := time.Now()
		a := <-done
		if a.err != nil {
			return nil, fmt.Errorf("long-poll: %w", a.err)
		}
		if len(a.ans.Events) == 0 {
			return nil, fmt.Errorf("long-poll answered without the message (timed out?)")
		}
		after = a.ans.Next
		fromSend.Add(a.at.Sub(t0))
		fromAck.Add(a.at.Sub(t1))
		sendLat.Add(t1.Sub(t0))
	}
	res := env.newResult("wakeup", map[string]any{"samples": o.Samples, "park": o.Park.String()})
	// The event is published when its batch is committed, which is also
	// when the sender is answered: the poll's answer time measured from
	// the 201 is the wake-up delay (negative when the poll won the race);
	// measured from the send's start it adds the durable write.
	res.AddSummary("wake after the 201", fromAck.Summary(), "< 10")
	res.AddSummary("wake from send start", fromSend.Summary(), "")
	res.Notes = append(res.Notes, "wake after the 201 = poll answered − sender's 201 received (≤ 0: the poll was answered first)")
	res.AddSummary("send latency", sendLat.Summary(), "")
	return res, nil
}
