package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// BenchmarkAuthenticate measures the bearer-token lookup every
// authenticated request makes, from parallel goroutines as the HTTP server
// calls it: answered from the session cache after each session's first
// use (BenchmarkAuthenticateCacheMiss measures the database query).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: b.TempDir() + "/data/bench.db", Synchronous: "FULL"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const sessions = 1000
	hashes := make([][]byte, sessions)
	for i := range hashes {
		_, hashes[i] = models.NewToken()
	}
	err = st.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		for i, h := range hashes {
			uid, err := store.InsertUser(ctx, tx, "bench-"+strconv.Itoa(i), "Bench", models.RoleMember)
			if err != nil {
				return err
			}
			did, err := store.InsertDevice(ctx, tx, uid, "device")
			if err != nil {
				return err
			}
			if _, err := store.InsertSession(ctx, tx, uid, did, h, 24*time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, []byte("no such token hash")); !models.IsCode(err, models.EUNAUTHORIZED) {
		b.Fatalf("unknown token: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p, err := st.Authenticate(ctx, hashes[i%sessions])
			if err != nil || p.DeviceID == "" {
				b.Fatalf("authenticate: %v", err)
			}
			i++
		}
	})
}
