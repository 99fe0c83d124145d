package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorSaysWhatToFix: doctor on a real data directory reports a
// healthy one as such (integrity, migrations, clock, disk), names the fix
// for a readable data directory and a missing database, and refuses an
// inconsistent configuration like serve does.
func TestDoctorSaysWhatToFix(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")

	rc, out, _ := runCLI(t, "doctor", "--data-dir", dataDir)
	if rc != 1 || !strings.Contains(out, "FIX   data directory") || !strings.Contains(out, "sovereign serve") {
		t.Fatalf("doctor without a data directory: exit %d\n%s", rc, out)
	}

	p := startBinary(t, dataDir)
	stop(t, p)
	rc, out, errOut := runCLI(t, "doctor", "--data-dir", dataDir, "--backup-dir", filepath.Join(dir, "backups"))
	if rc != 0 {
		t.Fatalf("doctor on a healthy directory: exit %d\n%s%s", rc, out, errOut)
	}
	for _, want := range []string{"ok    database: integrity_check ok", "ok    migrations: all applied", "ok    permissions:", "ok    clock:",
		"disk:", "0 to fix"} {
		if !strings.Contains(out, want) {
			t.Errorf("healthy doctor output lacks %q:\n%s", want, out)
		}
	}

	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rc, out, _ = runCLI(t, "doctor", "--data-dir", dataDir)
	if rc != 1 || !strings.Contains(out, "FIX   permissions") || !strings.Contains(out, "chmod 700 "+dataDir) {
		t.Fatalf("doctor on a readable directory: exit %d\n%s", rc, out)
	}
	_ = os.Chmod(dataDir, 0o700)

	if err := os.Remove(filepath.Join(dataDir, "sovereign.db")); err != nil {
		t.Fatal(err)
	}
	rc, out, _ = runCLI(t, "doctor", "--data-dir", dataDir)
	if rc != 1 || !strings.Contains(out, "FIX   database: no database") || !strings.Contains(out, "sovereign restore") {
		t.Fatalf("doctor without a database: exit %d\n%s", rc, out)
	}

	rc, _, errOut = runCLI(t, "doctor", "--data-dir", dataDir, "--rp-origins", "http://chat.example.org")
	if rc != 2 || !strings.Contains(errOut, "only on https") {
		t.Fatalf("doctor with a refused configuration: exit %d %q", rc, errOut)
	}
}
