// Command sovereign is the Sovereign messaging server and its operator CLI.
//
//	sovereign serve     run the server (default when no command is given)
//	sovereign invite    create an invite code and print it with its link
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
	"time"

	"github.com/sovereign-im/sovereign/api"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/store"
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
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, env, stderr)
	case "invite":
		return invite(args, env, stdout, stderr)
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
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sovereign: unknown command %q\n", cmd)
		usage(stderr)
		return exitConfig
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: sovereign <command> [flags]

commands:
  serve     run the server (default); "sovereign serve -h" lists every flag
  invite    create an invite: sovereign invite [--admin] [--expires 72h] [--uses 1]
            (opens the database directly; works while the server runs)
  openapi   print the OpenAPI 3.1 document to stdout
  version   print the version
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

// loadConfig loads configuration and reports errors as one line, exit 2.
func loadConfig(name string, args []string, env func(string) string, stderr io.Writer, extra ...func(*flag.FlagSet)) (config.Config, *flag.FlagSet, int) {
	cfg, fs, err := config.Load(name, args, env, stderr, extra...)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, fs, exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "sovereign: configuration error:", err)
		return cfg, fs, exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sovereign: configuration error: unexpected argument %q\n", fs.Arg(0))
		return cfg, fs, exitConfig
	}
	return cfg, fs, -1
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

func serve(args []string, env func(string) string, stderr io.Writer) int {
	cfg, _, code := loadConfig("sovereign serve", args, env, stderr)
	if code >= 0 {
		return code
	}
	log := newLogger(cfg, stderr)
	raiseFileLimit(cfg, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := server.New(ctx, cfg, log, server.Options{})
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFail
	}
	if err := srv.Run(ctx, nil); err != nil {
		log.Error("server stopped with an error", "err", err)
		return exitFail
	}
	return exitOK
}

// invite creates an invite in the database (the server may be running: the
// store opens the same SQLite file in WAL mode) and prints its code and
// link. The code is shown only here; the database keeps its SHA-256.
func invite(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var (
		admin   bool
		expires time.Duration
		uses    int
	)
	cfg, _, code := loadConfig("sovereign invite", args, env, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&admin, "admin", false, "the invite grants the admin role")
		fs.DurationVar(&expires, "expires", 72*time.Hour, "how long the invite stays valid (1m to 8760h)")
		fs.IntVar(&uses, "uses", 1, fmt.Sprintf("how many accounts may register with it (1 to %d)", store.MaxInviteUses))
	})
	if code >= 0 {
		return code
	}
	role := models.RoleMember
	if admin {
		role = models.RoleAdmin
	}
	log := newLogger(cfg, stderr)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: cfg.DBPath(), AllowInsecurePermissions: cfg.AllowInsecurePermissions,
		Synchronous: cfg.Synchronous, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "sovereign: open database:", err)
		return exitFail
	}
	defer st.Close()
	inviteCode, inv, err := st.CreateInvite(ctx, store.NewInvite{Role: role, TTL: expires, Uses: uses})
	if err != nil {
		var de *models.Error
		if errors.As(err, &de) && de.Code == models.EINVALID {
			fmt.Fprintln(stderr, "sovereign: configuration error:", de.Message)
			return exitConfig
		}
		fmt.Fprintln(stderr, "sovereign: create invite:", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "Invite code: %s\nLink:        %s\nRole:        %s\nUses:        %d\nExpires:     %s\n",
		inviteCode, server.InviteLink(cfg, inviteCode, inv.Role), inv.Role, inv.UsesLeft, inv.ExpiresAt.Local().Format(time.RFC1123))
	return exitOK
}
