package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sovereign-im/sovereign/models"
)

// unboundedFeedSQL is the feed query without the page bound: the oracle
// the bounded query must agree with.
const unboundedFeedSQL = `
SELECT seq FROM (
  SELECT e.seq FROM group_members m JOIN events e ON e.group_id = m.group_id
  WHERE m.device_id = ? AND (m.left_seq IS NULL OR m.left_seq > ?)
    AND e.group_id IS NOT NULL AND e.recipient_device_id IS NULL
    AND e.seq > max(m.joined_seq, ?) AND (m.left_seq IS NULL OR e.seq <= m.left_seq)
  UNION ALL
  SELECT e.seq FROM events e WHERE e.recipient_device_id = ? AND e.seq > ?
) AS feed
ORDER BY seq LIMIT ?`

// TestFeedBoundAgreesWithUnboundedQuery builds random membership intervals
// (several per group: joined, left, joined again), group events, Welcomes
// and notices addressed to the device, and checks that every page from
// every cursor, at several page sizes, is exactly what the unbounded query
// returns.
func TestFeedBoundAgreesWithUnboundedQuery(t *testing.T) {
	ctx := context.Background()
	s := openDelivery(t, Options{})
	rnd := rand.New(rand.NewPCG(1, 2))
	dev := seedDevice(t, s, "reader")
	other := seedDevice(t, s, "other")
	const groups, events = 6, 1200
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		for g := range groups {
			if _, err := tx.NewRaw(`INSERT INTO groups (id, created_at) VALUES (?, 0)`, []byte(fmt.Sprint("g", g))).Exec(ctx); err != nil {
				return err
			}
		}
		for i := range events {
			g := []byte(fmt.Sprint("g", rnd.IntN(groups)))
			var gid, recipient any = g, nil
			switch r := rnd.IntN(20); {
			case r == 0: // a Welcome addressed to the device
				recipient = dev
			case r == 1: // a notice to the device outside any group
				gid, recipient = nil, dev
			case r == 2: // addressed to another device
				recipient = other
			}
			if _, err := tx.NewRaw(`INSERT INTO events (id, server_ts, kind, group_id, payload, recipient_device_id) VALUES (?, ?, 'application', ?, ?, ?)`,
				fmt.Sprint("ev", i), i, gid, []byte{0}, recipient).Exec(ctx); err != nil {
				return err
			}
		}
		// Membership intervals of the device: per group, up to three
		// disjoint ones, the last maybe still open.
		for g := range groups {
			at := int64(rnd.IntN(200))
			for k := 0; k < 3 && at < events; k++ {
				var left any
				end := at + 1 + int64(rnd.IntN(500))
				if k < 2 && end < events {
					left = end
				}
				if _, err := tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq, left_seq) VALUES (?, ?, ?, ?)`,
					[]byte(fmt.Sprint("g", g)), dev, at, left).Exec(ctx); err != nil {
					return err
				}
				if left == nil {
					break
				}
				at = end + int64(rnd.IntN(100))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked, full := 0, 0
	for _, limit := range []int{1, 2, 5, 37, 100, MaxFeedPage} {
		for after := int64(0); after <= events; after += int64(1 + rnd.IntN(13)) {
			got, more, err := s.Feed(ctx, dev, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			if err := s.rdb.NewRaw(unboundedFeedSQL, dev, after, after, dev, after, limit+1).Scan(ctx, &want); err != nil {
				t.Fatal(err)
			}
			wantMore := len(want) > limit
			if wantMore {
				want = want[:limit]
			}
			if !slices.Equal(seqsOf(got), want) || more != wantMore {
				t.Fatalf("limit %d after %d: got %v more=%v, want %v more=%v", limit, after, seqsOf(got), more, want, wantMore)
			}
			checked++
			if wantMore {
				full++
			}
		}
	}
	if checked < 500 || full < checked/3 {
		t.Fatalf("only %d pages checked, %d of them full", checked, full)
	}
	t.Logf("%d pages checked, %d full", checked, full)
}

func seqsOf(evs []*models.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}
