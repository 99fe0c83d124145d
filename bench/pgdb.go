package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// FreshDatabase creates a new, empty PostgreSQL database on the server of
// serverURL (connecting to serverURL's own database to do it; the role
// needs CREATEDB) and returns its URL and a function that drops it.
func FreshDatabase(ctx context.Context, serverURL string) (string, func(), error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("parse %q: %w", serverURL, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "sovereign_bench_" + hex.EncodeToString(b)
	admin := func(sql string) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, serverURL)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(cctx, sql)
		return err
	}
	if err := admin(`CREATE DATABASE ` + name); err != nil {
		return "", nil, fmt.Errorf("create a database for the benchmark: %w", err)
	}
	u.Path = "/" + name
	drop := func() { _ = admin(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) }
	return u.String(), drop, nil
}
