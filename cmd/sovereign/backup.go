package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sovereign-im/sovereign/store"
)

// backup writes a consistent, verified copy of the server's database to
// --to while the server may be running (SQLite's VACUUM INTO: one read
// transaction, the writer goes on), mode 0600.
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
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, integrity ok, %d migrations, %s)\n",
		info.Path, info.Bytes, info.Migrations, info.Took.Round(time.Millisecond))
	return exitOK
}

// restore copies a verified backup into an empty data directory; the
// server is then started on that directory as usual.
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
	fmt.Fprintf(stdout, "restored %s into %s (%d bytes, integrity ok); start the server with the same --data-dir\n",
		from, info.Path, info.Bytes)
	return exitOK
}
