package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

// TestSystemdUnitVerifies: the shipped unit passes systemd-analyze verify
// (with ExecStart pointed at the real binary) and keeps its hardening.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	raw, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "packaging", "systemd", "sovereign.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, must := range []string{"DynamicUser=yes", "StateDirectory=sovereign", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "UMask=0077", "SystemCallFilter=@system-service"} {
		if !strings.Contains(unit, must) {
			t.Errorf("unit lacks %q", must)
		}
	}
	dir := t.TempDir()
	unit = strings.ReplaceAll(unit, "/usr/local/bin/sovereign", sovereignBinary(t))
	path := filepath.Join(dir, "sovereign.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
