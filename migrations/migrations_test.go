package migrations

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
)

func names(t *testing.T, f fs.FS) []string {
	t.Helper()
	m, err := fs.Glob(f, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// TestEveryMigrationHasItsTwin: a migration added for one engine only
// would leave the other engine's schema behind.
func TestEveryMigrationHasItsTwin(t *testing.T) {
	sq, pg := names(t, SQLite), names(t, Postgres)
	if len(sq) == 0 {
		t.Fatal("no SQLite migrations embedded")
	}
	for _, n := range sq {
		if !slices.Contains(pg, n) {
			t.Errorf("sqlite/%s has no twin postgres/%s", n, n)
		}
	}
	for _, n := range pg {
		if !slices.Contains(sq, n) {
			t.Errorf("postgres/%s has no twin sqlite/%s", n, n)
		}
	}
}

// TestNoMigrationOutsideEngineDirs: a .sql file in this directory itself
// is embedded by neither engine and would silently never run.
func TestNoMigrationOutsideEngineDirs(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			t.Errorf("%s is outside sqlite/ and postgres/: move it to sqlite/ and write its twin in postgres/", e.Name())
		}
	}
}
