package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateRefusesBadArguments: sovereign migrate answers a wrong
// --from, --to or a missing database with one line and exit 2, before
// touching any database. (The copy itself is tests/scaleout's
// TestMigrateSQLiteToPostgres.)
func TestMigrateRefusesBadArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--to", "postgres://u@127.0.0.1:1/x"}, "--from must be sqlite:PATH"},
		{[]string{"--from", "/var/lib/sovereign", "--to", "postgres://u@127.0.0.1:1/x"}, "--from must be sqlite:PATH"},
		{[]string{"--from", "sqlite:" + missing, "--to", "mysql://u@h/x"}, "--to must be a postgres:// URL"},
		{[]string{"--from", "sqlite:" + missing, "--to", "postgres://u@127.0.0.1:1/x"}, "no SQLite database at " + missing},
		{[]string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		cmd := exec.Command(sovereignBinary(t), append([]string{"migrate"}, tt.args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Fatalf("%v: exit %v, want 2; stderr %s", tt.args, err, stderr.String())
		}
		if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, tt.want) || stdout.Len() != 0 {
			t.Fatalf("%v: stderr %q, want one line with %q", tt.args, out, tt.want)
		}
	}
}
