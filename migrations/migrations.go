// Package migrations embeds Sovereign's versioned SQL schema migrations,
// one directory per database engine:
//
//	sqlite/    the embedded SQLite database (the default)
//	postgres/  PostgreSQL (--database postgres://…)
//
// Every migration exists in both directories under the same file name
// (NNNNNNNNNNNNNN_name.up.sql, `--bun:split` between statements): the
// versions recorded in bun_migrations are the same on both engines, which
// is what `sovereign migrate` and the readiness check compare. A test
// (migrations_test.go) refuses a migration without its twin and any .sql
// file left in this directory itself. They run at start-up through
// bun/migrate, marked applied only when they succeed; see README.md.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql
var sqliteFiles embed.FS

//go:embed postgres/*.sql
var postgresFiles embed.FS

// SQLite holds the SQLite migrations.
var SQLite = sub(sqliteFiles, "sqlite")

// Postgres holds the PostgreSQL migrations.
var Postgres = sub(postgresFiles, "postgres")

// FS is the SQLite migrations, for code written before the engine split.
var FS = SQLite

func sub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
