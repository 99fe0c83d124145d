// Command sovereign is the Sovereign messaging server and its operator CLI.
//
//	sovereign serve     run the server (default when no command is given)
//	sovereign invite    create an invite code and print it with its link
//	sovereign migrate   copy a stopped SQLite server into an empty PostgreSQL database
//	sovereign openapi   print the OpenAPI 3.1 document (no database, no listener)
//	sovereign version   print the build version
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
	"runtime/debug"
	"syscall"

	"github.com/sovereign-im/sovereign/api"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/server"
)

// version is set at link time (-ldflags "-X main.version=…").
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, env func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			usage(stdout)
			return exitOK
		case a != "" && a[0] != '-':
			cmd, args = a, args[1:]
		}
	}
	switch cmd {
	case "serve":
		return serve(args, env, stdout, stderr)
	case "invite":
		return invite(args, env, stdout, stderr)
	case "backup":
		return backup(args, env, stdout, stderr)
	case "restore":
		return restore(args, env, stdout, stderr)
	case "doctor":
		return doctor(args, env, stdout, stderr)
	case "migrate":
		return migrate(args, stdout, stderr)
	case "openapi":
		doc, err := api.OpenAPI()
		if err != nil {
			fmt.Fprintln(stderr, "sovereign: build OpenAPI document:", err)
			return exitFail
		}
		_, _ = stdout.Write(doc)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "sovereign", buildVersion(), "API", api.Version)
		return exitOK
	case "help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sovereign: unknown command %q; see `sovereign -h`\n", cmd)
		return exitConfig
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sovereign <command> [flags]

commands:
  serve     run the server (the default when no command is given)
  invite    create an invite and print its code and link: [--admin] [--expires 72h] [--uses 1]
  backup    write a consistent, verified copy of the database (and its attachment files) while the server runs: --to FILE
  restore   put a backup into an empty data directory: --from FILE
  migrate   copy a stopped SQLite server into a new PostgreSQL database: --from sqlite:PATH --to postgres://…
  doctor    check a configuration and data directory without starting the server, and say what to fix
  openapi   print the OpenAPI 3.1 document to stdout (no database, no listener)
  version   print the version
  help      show this list

"sovereign <command> -h" lists a command's flags. The commands that open the
database take the same configuration as serve (flags, SOVEREIGN_* variables,
--config FILE), so point them at the server's --data-dir or --config.
`)
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

// loadConfig loads a command's configuration. Usage errors are one line
// naming the option and the fix, plus where to read more, and exit 2; -h
// prints the command's flags to stdout and exits 0. code is -1 when the
// command should go on.
func loadConfig(name, synopsis string, args []string, env func(string) string, stdout, stderr io.Writer, extra ...func(*flag.FlagSet)) (cfg config.Config, fs *flag.FlagSet, code int) {
	cfg, fs, err := config.Load(name, args, env, extra...)
	if errors.Is(err, flag.ErrHelp) {
		config.PrintUsage(stdout, fs, synopsis)
		return cfg, fs, exitOK
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		usageError(stderr, name, err.Error())
		return cfg, fs, exitConfig
	}
	return cfg, fs, -1
}

// usageError prints one line: what is wrong and where the flags are listed.
func usageError(stderr io.Writer, name, msg string) {
	fmt.Fprintf(stderr, "sovereign: %s; see `%s -h`\n", msg, name)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("sovereign serve", "sovereign serve [flags]", args, env, stdout, stderr)
	if code >= 0 {
		return code
	}
	log := newLogger(cfg, stderr)
	raiseFileLimit(cfg, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Bind first: a port-0 listen address becomes the real port before the
	// WebAuthn origins and printed URLs are derived from it.
	ls, err := server.Listen(cfg)
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFail
	}
	cfg = cfg.WithBoundAddresses(ls.Addresses())
	srv, err := server.New(ctx, cfg, log, server.Options{})
	if err != nil {
		ls.Close()
		log.Error("start failed", "err", err)
		return exitFail
	}
	if err := srv.Serve(ctx, ls, nil); err != nil {
		log.Error("server stopped with an error", "err", err)
		return exitFail
	}
	return exitOK
}
