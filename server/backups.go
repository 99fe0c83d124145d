package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sovereign-im/sovereign/store"
)

// Scheduled backups (--backup-dir, --backup-every, --backup-keep): the
// server writes a verified consistent copy of its database into the backup
// directory at start and then every interval, named by its UTC time, and
// keeps the newest N. For operators who will never run `sovereign backup`.
// Each backup's attachment files go into NAME.attachments/ beside it,
// hard-linked from the data directory when it is on the same file system
// (completed attachments never change), and are pruned with it.

const backupPrefix, backupSuffix = "sovereign-", ".db"

// backupName is the file name of a scheduled backup taken at t.
func backupName(t time.Time) string {
	return backupPrefix + t.UTC().Format("20060102T150405.000000Z") + backupSuffix
}

// BackupScheduler takes the scheduled backups.
type BackupScheduler struct {
	st    *store.Store
	dir   string
	files string // the attachments directory: its complete files go with each backup
	every time.Duration
	keep  int
	log   *slog.Logger
	now   func() time.Time
	// OnBackup, if set, is told of each scheduled backup's outcome (metrics).
	OnBackup func(info *store.BackupInfo, err error)
}

// RunOnce takes one backup and prunes the old ones.
func (b *BackupScheduler) RunOnce(ctx context.Context) (*store.BackupInfo, error) {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create backup directory: %w", err)
	}
	info, err := b.st.Backup(ctx, filepath.Join(b.dir, backupName(b.now())))
	if b.OnBackup != nil {
		b.OnBackup(info, err)
	}
	if err != nil {
		return nil, err
	}
	if b.files != "" {
		fi, err := store.BackupAttachments(ctx, info.Path, b.files, info.Path+store.AttachmentsSuffix, true)
		if err != nil {
			return info, fmt.Errorf("backup attachment files: %w", err)
		}
		if len(fi.Missing) > 0 {
			b.log.Warn("attachments deleted while the backup ran", "file", info.Path, "missing", len(fi.Missing))
		}
	}
	if err := b.prune(); err != nil {
		return info, err
	}
	return info, nil
}

// prune deletes all but the newest keep scheduled backups (only files
// this scheduler names; anything else in the directory is left alone).
func (b *BackupScheduler) prune() error {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("list backups: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	sort.Strings(names) // the names sort by time
	for len(names) > b.keep {
		if err := os.Remove(filepath.Join(b.dir, names[0])); err != nil {
			return fmt.Errorf("prune backup: %w", err)
		}
		if err := os.RemoveAll(filepath.Join(b.dir, names[0]+store.AttachmentsSuffix)); err != nil {
			return fmt.Errorf("prune backup: %w", err)
		}
		b.log.Info("old backup deleted", "file", names[0])
		names = names[1:]
	}
	return nil
}

// run takes a backup now and then every interval until ctx ends.
func (b *BackupScheduler) run(ctx context.Context) {
	tick := time.NewTicker(b.every)
	defer tick.Stop()
	for {
		if info, err := b.RunOnce(ctx); err != nil {
			if ctx.Err() == nil {
				b.log.Error("scheduled backup failed", "dir", b.dir, "err", err)
			}
		} else {
			b.log.Info("backup written", "file", info.Path, "bytes", info.Bytes, "took", info.Took.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
