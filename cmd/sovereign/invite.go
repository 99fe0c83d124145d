package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/server"
	"github.com/sovereign-im/sovereign/store"
)

// invite creates an invite in the server's existing database (the server
// may be running: the store opens the same SQLite file in WAL mode),
// records it in the audit log with the command line as its actor, and
// prints its code and link. The code is shown only here; the database
// keeps its SHA-256.
func invite(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var (
		admin   bool
		expires time.Duration
		uses    int
	)
	cfg, _, code := loadConfig("sovereign invite", "sovereign invite [--admin] [--expires 72h] [--uses 1] [configuration flags]",
		args, env, stdout, stderr, func(fs *flag.FlagSet) {
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
	ctx := context.Background()
	st, code := openExisting(ctx, cfg, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	inviteCode, inv, err := st.CreateAuditedInvite(ctx, models.Actor{}, store.NewInvite{Role: role, TTL: expires, Uses: uses},
		commandLineActor("sovereign invite", args))
	if err != nil {
		var de *models.Error
		if errors.As(err, &de) && de.Code == models.EINVALID {
			usageError(stderr, "sovereign invite", de.Message)
			return exitConfig
		}
		fmt.Fprintln(stderr, "sovereign: create invite:", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "Invite code: %s\nLink:        %s\nRole:        %s\nUses:        %d\nExpires:     %s\n",
		inviteCode, server.InviteLink(cfg, inviteCode, inv.Role), inv.Role, inv.UsesLeft, inv.ExpiresAt.Local().Format(time.RFC1123))
	return exitOK
}

// openExisting opens the server's database for a command, refusing to
// create one: a command run from the wrong directory or without the
// server's --data-dir/--config must not make an empty database the server
// never reads. On failure it has printed why and returns the exit code.
func openExisting(ctx context.Context, cfg config.Config, stderr io.Writer) (*store.Store, int) {
	st, err := store.Open(ctx, store.Options{Database: cfg.Database, Path: cfg.DBPath(), AllowInsecurePermissions: cfg.AllowInsecurePermissions,
		Synchronous: cfg.Synchronous, Logger: newLogger(cfg, stderr), MustExist: true})
	if err != nil {
		var ne *store.NoDatabaseError
		if errors.As(err, &ne) {
			fmt.Fprintf(stderr, "sovereign: no database at %s: pass the server's --data-dir (or --config), or start `sovereign serve` once to create it\n", ne.Path)
			return nil, exitConfig
		}
		fmt.Fprintln(stderr, "sovereign: open database:", err)
		return nil, exitFail
	}
	return st, exitOK
}

// commandLineActor is the audit detail of an action taken from the command
// line: which command, with which flags (never secrets: no flag holds one),
// by which operating-system user.
func commandLineActor(command string, args []string) map[string]any {
	d := map[string]any{"via": "command line", "command": strings.TrimSpace(command + " " + strings.Join(args, " "))}
	if u, err := user.Current(); err == nil {
		d["os_user"] = u.Username
	}
	return d
}
