package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
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

// TestScheduledBackupsCarryAttachments: each scheduled backup gets the
// complete attachments' files beside it (NAME.attachments/, byte-identical,
// hard links on the same file system), not an upload in progress, and a
// pruned backup's files go with it.
func TestScheduledBackupsCarryAttachments(t *testing.T) {
	if os.Getenv("SOVEREIGN_TEST_DATABASE") == "postgres" {
		t.Skip("scheduled backups are SQLite's (PostgreSQL: pg_dump)")
	}
	backupDir := filepath.Join(t.TempDir(), "backups")
	s := testutil.NewServer(t, func(c *config.Config) {
		c.BackupDir = backupDir
		c.BackupEvery = time.Hour
		c.BackupKeep = 1
	})
	acc := s.SeedAccount(t, "root", models.RoleAdmin)
	gid := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
	if r := s.Do(t, http.MethodPost, "/v1/groups", acc.Token, map[string]any{"group_id": gid}); r.StatusCode != http.StatusCreated {
		t.Fatalf("create group: %d %s", r.StatusCode, r.Body)
	}
	declare := func(size int) string {
		r := s.Do(t, http.MethodPost, "/v1/attachments", acc.Token, map[string]any{"group_id": gid, "size": size})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("declare: %d %s", r.StatusCode, r.Body)
		}
		var a struct {
			ID string `json:"id"`
		}
		r.JSON(t, &a)
		return a.ID
	}
	blob := bytes.Repeat([]byte("ciphertext"), 10_000)
	done := declare(len(blob))
	if r := s.Do(t, http.MethodPut, "/v1/attachments/"+done+"?offset=0", acc.Token, blob, "Content-Type", "application/octet-stream"); r.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d %s", r.StatusCode, r.Body)
	}
	partial := declare(2 * len(blob))
	if r := s.Do(t, http.MethodPut, "/v1/attachments/"+partial+"?offset=0", acc.Token, blob, "Content-Type", "application/octet-stream"); r.StatusCode != http.StatusOK {
		t.Fatalf("partial upload: %d %s", r.StatusCode, r.Body)
	}
	first, err := s.App.Backups().RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	files := first.Path + store.AttachmentsSuffix
	entries, err := os.ReadDir(files)
	if err != nil || len(entries) != 1 || entries[0].Name() != done {
		t.Fatalf("%s holds %v (%v), want only %s", files, entries, err, done)
	}
	got, err := os.ReadFile(filepath.Join(files, done))
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("the backed-up attachment differs (%v)", err)
	}
	src, _ := os.Stat(filepath.Join(s.Config.AttachmentsDir(), done))
	dst, _ := os.Stat(filepath.Join(files, done))
	if !os.SameFile(src, dst) {
		t.Errorf("the backup's file is a copy, want a hard link on the same file system")
	}
	second, err := s.App.Backups().RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Path + store.AttachmentsSuffix); !os.IsNotExist(err) {
		t.Fatalf("the pruned backup's attachment files stay: %v", err)
	}
	if _, err := os.Stat(filepath.Join(second.Path+store.AttachmentsSuffix, done)); err != nil {
		t.Fatalf("the newest backup lacks the attachment: %v", err)
	}
}
