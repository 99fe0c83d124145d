package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
)

// BenchmarkFeed measures the feed query every sync request runs (long-poll
// answers, SSE backlogs, WebSocket resumes): a device in 10 groups of 8
// members, 20,000 stored 1 KiB messages, pages of 100 events from random
// cursors and from the oldest one, from parallel readers on the read pool.
func BenchmarkFeed(b *testing.B) {
	s := openDelivery(b, Options{})
	ctx := context.Background()
	const groups, members, perGroup = 10, 8, 2000
	reader := seedDevice(b, s, "reader")
	for g := 0; g < groups; g++ {
		gid := []byte(fmt.Sprintf("feed-bench-%02d", g))
		owner := seedDevice(b, s, fmt.Sprintf("fowner%02d", g))
		if _, err := s.CreateGroup(ctx, owner, gid, nil); err != nil {
			b.Fatal(err)
		}
		refs := [][]byte{}
		for m := 0; m < members-1; m++ {
			d := reader
			if m > 0 {
				d = seedDevice(b, s, fmt.Sprintf("fm%02d-%02d", g, m))
			}
			ref := mlstest.Ref()
			seedClaim(b, s, owner, d, ref)
			refs = append(refs, ref)
		}
		if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: owner, GroupID: gid,
			Commit: mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200), Welcome: mlstest.Welcome(refs...)}); err != nil {
			b.Fatal(err)
		}
		msg := mlstest.PrivateMessageSize(gid, 1, mls.ContentApplication, 1024)
		for i := 0; i < perGroup; i++ {
			if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: owner, GroupID: gid, Message: msg}); err != nil {
				b.Fatal(err)
			}
		}
	}
	head, err := s.FeedHead(ctx, reader)
	if err != nil || head == 0 {
		b.Fatalf("feed head %d: %v", head, err)
	}
	// From random cursors (the backlog after them averages 10,000 events),
	// and from the oldest cursor (the whole backlog waiting, as after a long
	// absence): with the page bound both cost about the same.
	for _, c := range []struct {
		name   string
		cursor func(i int64) int64
	}{
		{"random-cursor", func(i int64) int64 { return (i * 7919) % (head - 200) }},
		{"oldest-cursor", func(int64) int64 { return 0 }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int64(0)
				for pb.Next() {
					after := c.cursor(i)
					evs, _, err := s.Feed(ctx, reader, after, 100)
					if err != nil || len(evs) == 0 {
						b.Fatalf("feed after %d: %d events, %v", after, len(evs), err)
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
