// Package testdb gives tests a database on the engine the run selects.
//
// With SOVEREIGN_TEST_DATABASE unset (or "sqlite"), URL returns "" and the
// store opens its SQLite file as usual. With SOVEREIGN_TEST_DATABASE=postgres
// every call creates a fresh PostgreSQL database, cloned with CREATE
// DATABASE … TEMPLATE from a template that holds every migration (made once
// per set of migration files, under an advisory lock so that test packages
// running at the same time make it once), and drops it when the test ends.
// The server is SOVEREIGN_TEST_PG_URL, by default
// postgres://postgres@127.0.0.1:5432/test (trust authentication, as on the
// project's machines and CI).
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/migrate"

	"github.com/sovereign-im/sovereign/migrations"
)

// DefaultServer is the PostgreSQL of the project's machines and CI.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Postgres reports whether this run tests on PostgreSQL.
func Postgres() bool { return os.Getenv("SOVEREIGN_TEST_DATABASE") == "postgres" }

// Server is the maintenance URL of the test PostgreSQL server.
func Server() string {
	if u := os.Getenv("SOVEREIGN_TEST_PG_URL"); u != "" {
		return u
	}
	return DefaultServer
}

// URL returns the --database value for one test: "" on SQLite, a fresh
// PostgreSQL database otherwise.
func URL(t testing.TB) string {
	t.Helper()
	if !Postgres() {
		return ""
	}
	return Fresh(t)
}

// Fresh creates a PostgreSQL database cloned from the migrated template,
// whichever engine the run selects, and drops it when the test ends. A
// test that needs PostgreSQL (several instances, the ordering proof) calls
// it directly and skips when the server is not reachable, unless
// SOVEREIGN_TEST_DATABASE=postgres says it must be there.
func Fresh(t testing.TB) string {
	t.Helper()
	tmpl, err := template()
	if err != nil {
		if !Postgres() {
			t.Skipf("PostgreSQL not available (%v); set SOVEREIGN_TEST_DATABASE=postgres to require it", err)
		}
		t.Fatalf("test database template: %v", err)
	}
	name := "sovereign_t_" + randomHex(8)
	if err := admin(func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl))
		return err
	}); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_ = admin(func(ctx context.Context, db *sql.DB) error {
			_, err := db.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
			return err
		})
	})
	return withDatabase(Server(), name)
}

// Empty creates an empty PostgreSQL database (no migrations applied), for
// tests of migrating and of concurrent first starts.
func Empty(t testing.TB) string {
	t.Helper()
	name := "sovereign_e_" + randomHex(8)
	if err := admin(func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `CREATE DATABASE `+name)
		return err
	}); err != nil {
		if !Postgres() {
			t.Skipf("PostgreSQL not available (%v)", err)
		}
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_ = admin(func(ctx context.Context, db *sql.DB) error {
			_, err := db.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
			return err
		})
	})
	return withDatabase(Server(), name)
}

var (
	tmplOnce sync.Once
	tmplName string
	tmplErr  error
)

// template returns the name of the migrated template database, making it
// when no test process has yet made it for these migration files.
func template() (string, error) {
	tmplOnce.Do(func() {
		sum, err := migrationsHash()
		if err != nil {
			tmplErr = err
			return
		}
		tmplName = "sovereign_tmpl_" + sum
		tmplErr = admin(func(ctx context.Context, db *sql.DB) error {
			conn, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7301)`); err != nil {
				return err
			}
			defer func() { _, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7301)`) }()
			var exists bool
			if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, tmplName).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			building := tmplName + "_build"
			if _, err := conn.ExecContext(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, `CREATE DATABASE `+building); err != nil {
				return err
			}
			if err := migrateDatabase(ctx, withDatabase(Server(), building)); err != nil {
				return fmt.Errorf("migrate template: %w", err)
			}
			// Renamed only once complete, so a half-made template is never used.
			if _, err := conn.ExecContext(ctx, `ALTER DATABASE `+building+` RENAME TO `+tmplName); err != nil {
				return err
			}
			_, err = conn.ExecContext(ctx, `ALTER DATABASE `+tmplName+` WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`)
			return err
		})
	})
	return tmplName, tmplErr
}

// migrateDatabase applies the PostgreSQL migrations as the store does
// (bun/migrate over the embedded files; the store's own run then finds
// them all applied).
func migrateDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	defer db.Close()
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.Postgres); err != nil {
		return err
	}
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return err
	}
	_, err = m.Migrate(ctx)
	return err
}

func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.Postgres, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Postgres, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16], err
}

// admin runs f on the maintenance database.
func admin(f func(ctx context.Context, db *sql.DB) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(Server())
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = 5 * time.Second
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	db.SetMaxOpenConns(2)
	return f(ctx, db)
}

func withDatabase(server, name string) string {
	u, err := url.Parse(server)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
