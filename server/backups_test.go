package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/store"
)

// TestScheduledBackupsKeepTheNewest: --backup-dir gets a verified 0600
// backup at start and one per run; only the newest --backup-keep stay,
// and files the scheduler did not write are left alone.
func TestScheduledBackupsKeepTheNewest(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.BackupDir = filepath.Join(dir, "backups")
	cfg.BackupEvery = time.Hour
	cfg.BackupKeep = 2
	if err := config.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	app, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	list := func() []string {
		entries, _ := os.ReadDir(cfg.BackupDir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(list()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no backup at start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(cfg.BackupDir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := app.Backups().RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	names := list()
	var backups []string
	for _, n := range names {
		if strings.HasPrefix(n, "sovereign-") {
			backups = append(backups, n)
		}
	}
	if len(backups) != 2 || len(names) != 3 {
		t.Fatalf("backup directory holds %v, want the 2 newest backups and notes.txt", names)
	}
	for _, n := range backups {
		p := filepath.Join(cfg.BackupDir, n)
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o", n, fi.Mode().Perm())
		}
		if _, err := store.Verify(context.Background(), p); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if fi, _ := os.Stat(cfg.BackupDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("backup directory mode %04o", fi.Mode().Perm())
	}
}
