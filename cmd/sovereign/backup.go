package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sovereign-im/sovereign/store"
)

// backup writes a consistent, verified copy of the server's database to
// --to while the server may be running (SQLite's VACUUM INTO: one read
// transaction, the writer goes on), mode 0600; then the files of the
// attachments that copy records as complete into --to.attachments/
// (store.BackupAttachments).
func backup(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var to string
	cfg, _, code := loadConfig("sovereign backup", "sovereign backup --to FILE [configuration flags]", args, env, stdout, stderr,
		func(fs *flag.FlagSet) { fs.StringVar(&to, "to", "", "file to write the backup to (must not exist)") })
	if code >= 0 {
		return code
	}
	if to == "" {
		usageError(stderr, "sovereign backup", "--to FILE is required")
		return exitConfig
	}
	if cfg.Postgres() {
		fmt.Fprintln(stderr, "sovereign backup: copies the SQLite database; on PostgreSQL use pg_dump (see docs/deployment.md)")
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	info, err := store.Backup(ctx, cfg.DBPath(), to)
	if err != nil {
		var ne *store.NoDatabaseError
		if errors.As(err, &ne) {
			fmt.Fprintf(stderr, "sovereign: no database at %s: pass the server's --data-dir (or --config)\n", ne.Path)
			return exitConfig
		}
		fmt.Fprintln(stderr, "sovereign:", err)
		return exitFail
	}
	files, err := store.BackupAttachments(ctx, info.Path, cfg.AttachmentsDir(), info.Path+store.AttachmentsSuffix, false)
	if err != nil {
		fmt.Fprintln(stderr, "sovereign: the database was backed up but its attachment files were not:", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, integrity ok, %d migrations, %s)\n",
		info.Path, info.Bytes, info.Migrations, info.Took.Round(time.Millisecond))
	if files.Files > 0 {
		fmt.Fprintf(stdout, "attachment files written to %s (%d files, %d bytes); keep it next to the database file\n", files.Path, files.Files, files.Bytes)
	} else {
		fmt.Fprintln(stdout, "no complete attachments to copy")
	}
	if len(files.Missing) > 0 {
		fmt.Fprintf(stderr, "sovereign: %d attachments were deleted while the backup ran (their groups were deleted); the restored server answers 404 for them\n", len(files.Missing))
	}
	return exitOK
}

// restore copies a verified backup into an empty data directory, and its
// attachment files (FILE.attachments/, when the backup has any) into the
// directory's attachments/; the server is then started on that directory
// as usual.
func restore(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var from string
	cfg, _, code := loadConfig("sovereign restore", "sovereign restore --from FILE [configuration flags]", args, env, stdout, stderr,
		func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "backup file to restore (made by sovereign backup)")
		})
	if code >= 0 {
		return code
	}
	if from == "" {
		usageError(stderr, "sovereign restore", "--from FILE is required")
		return exitConfig
	}
	if cfg.Postgres() {
		fmt.Fprintln(stderr, "sovereign restore: restores a SQLite backup; to move a SQLite server to PostgreSQL use sovereign migrate (see docs/deployment.md)")
		return exitConfig
	}
	files := from + store.AttachmentsSuffix
	_, statErr := os.Stat(files)
	hasFiles := statErr == nil
	if hasFiles {
		if err := store.CheckAttachmentsEmpty(cfg.AttachmentsDir()); err != nil {
			fmt.Fprintln(stderr, "sovereign:", err)
			return exitConfig
		}
	}
	info, err := store.Restore(context.Background(), from, cfg.DBPath())
	if err != nil {
		var ne *store.DataDirNotEmptyError
		if errors.As(err, &ne) {
			fmt.Fprintln(stderr, "sovereign:", err)
			return exitConfig
		}
		fmt.Fprintln(stderr, "sovereign:", err)
		return exitFail
	}
	if hasFiles {
		fi, err := store.RestoreAttachments(files, cfg.AttachmentsDir())
		if err != nil {
			fmt.Fprintln(stderr, "sovereign: the database was restored but its attachment files were not:", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "restored %d attachment files (%d bytes) into %s\n", fi.Files, fi.Bytes, fi.Path)
	} else {
		fmt.Fprintf(stdout, "no %s next to the backup: no attachment files restored\n", filepath.Base(files))
	}
	fmt.Fprintf(stdout, "restored %s into %s (%d bytes, integrity ok); start the server with the same --data-dir\n",
		from, info.Path, info.Bytes)
	return exitOK
}
