package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
)

// BenchmarkSendApplicationMessage measures the durable store path of an
// application message (parse, membership and epoch check, insert, quota,
// member list for publishing; synchronous=FULL with group commit) with many
// concurrent senders spread over 16 groups of 8 member devices.
func BenchmarkSendApplicationMessage(b *testing.B) {
	s := openDelivery(b, Options{})
	ctx := context.Background()
	const groups, members = 16, 8
	type sender struct {
		device string
		gid    []byte
		msg    []byte
	}
	var senders []sender
	for g := 0; g < groups; g++ {
		gid := []byte(fmt.Sprintf("bench-group-%02d", g))
		owner := seedDevice(b, s, fmt.Sprintf("owner%02d", g))
		if _, err := s.CreateGroup(ctx, owner, gid, nil); err != nil {
			b.Fatal(err)
		}
		var refs [][]byte
		devs := []string{owner}
		for m := 1; m < members; m++ {
			d := seedDevice(b, s, fmt.Sprintf("m%02d-%02d", g, m))
			ref := mlstest.Ref()
			seedClaim(b, s, owner, d, ref)
			refs = append(refs, ref)
			devs = append(devs, d)
		}
		if _, _, err := s.CommitBundle(ctx, CommitInput{DeviceID: owner, GroupID: gid,
			Commit: mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200), Welcome: mlstest.Welcome(refs...)}); err != nil {
			b.Fatal(err)
		}
		for _, d := range devs {
			senders = append(senders, sender{d, gid, mlstest.PrivateMessageSize(gid, 1, mls.ContentApplication, 1024)})
		}
	}
	var next atomic.Int64
	b.SetParallelism(16)
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sd := senders[int(next.Add(1))%len(senders)]
		for pb.Next() {
			if _, _, err := s.SendMessage(ctx, SendInput{DeviceID: sd.device, GroupID: sd.gid, Message: sd.msg}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
