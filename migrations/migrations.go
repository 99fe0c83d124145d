// Package migrations embeds Sovereign's versioned SQL schema migrations. They
// run at start-up through bun/migrate, locked and marked applied only when
// they succeed. Files are named NNNNNNNNNNNNNN_name.up.sql; `--bun:split`
// separates statements.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
