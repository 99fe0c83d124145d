package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sovereign-im/sovereign/store"
)

// migrate copies a stopped SQLite server into an empty PostgreSQL
// database (store.CopyToPostgres): every table in one PostgreSQL
// transaction, sequences moved past the copied ids, row counts verified
// and printed.
func migrate(args []string, stdout, stderr io.Writer) int {
	const name = "sovereign migrate"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "the SQLite database: sqlite:PATH (the server's sovereign.db, or its --data-dir)")
	to := fs.String("to", "", "the PostgreSQL database: postgres://user@host:5432/dbname (new and empty; password in PGPASSWORD or ~/.pgpass)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: sovereign migrate --from sqlite:PATH --to postgres://…")
			fmt.Fprintln(stdout, "\nCopies a stopped SQLite server into a new, empty PostgreSQL database and verifies every table's row count.")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		usageError(stderr, name, err.Error())
		return exitConfig
	}
	path, ok := strings.CutPrefix(*from, "sqlite:")
	switch {
	case fs.NArg() > 0:
		usageError(stderr, name, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
		return exitConfig
	case !ok || path == "":
		usageError(stderr, name, "--from must be sqlite:PATH (the stopped server's sovereign.db or data directory)")
		return exitConfig
	case !store.IsPostgres(*to):
		usageError(stderr, name, "--to must be a postgres:// URL of a new, empty database")
		return exitConfig
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "sovereign.db")
	}
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "sovereign: no SQLite database at %s: pass the stopped server's sovereign.db or --data-dir\n", path)
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	src, err := store.Open(ctx, store.Options{Path: path, MustExist: true, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "sovereign: open the SQLite database:", err)
		return exitFail
	}
	defer src.Close()
	rep, err := src.CopyToPostgres(ctx, *to, log)
	if err != nil {
		fmt.Fprintln(stderr, "sovereign:", err)
		if errors.Is(err, store.ErrTargetNotEmpty) {
			return exitConfig
		}
		return exitFail
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\trows\t")
	var total int64
	for _, t := range rep.Tables {
		fmt.Fprintf(tw, "%s\t%d\t\n", t.Table, t.Rows)
		total += t.Rows
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "copied %d rows in %d tables from %s in %s; every count verified on PostgreSQL; event seq continues after %d\n",
		total, len(rep.Tables), path, time.Since(start).Round(time.Millisecond), rep.LastSeq)
	fmt.Fprintln(stdout, "start the server with --database and the same --data-dir (attachment files stay in its attachments/ directory)")
	return exitOK
}
