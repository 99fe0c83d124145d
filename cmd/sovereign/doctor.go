package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/store"
)

// doctor checks a configuration and its data directory without starting
// the server, and says what to fix. Exit 0: nothing to fix (warnings may
// remain); 1: something fails; 2: the configuration itself is refused (the
// same one-line message serve would give).
func doctor(args []string, env func(string) string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("sovereign doctor", "sovereign doctor [configuration flags]", args, env, stdout, stderr)
	if code >= 0 {
		return code
	}
	d := &diagnosis{w: stdout}
	d.ok("configuration", fmt.Sprintf("RP ID %s, origins %s, invite links on %s", cfg.RPID, strings.Join(cfg.RPOrigins, ","), cfg.BaseURL()))
	checkOrigins(d, cfg)
	checkTLS(d, cfg, time.Now())
	haveDB := checkPermissions(d, cfg)
	checkDisk(d, cfg.DataDir)
	if haveDB {
		checkDatabase(d, cfg, time.Now())
	}
	checkBackups(d, cfg, time.Now())
	fmt.Fprintf(stdout, "\n%d ok, %d warnings, %d to fix\n", d.oks, d.warns, d.fails)
	if d.fails > 0 {
		return exitFail
	}
	return exitOK
}

// diagnosis prints one line per finding.
type diagnosis struct {
	w                 io.Writer
	oks, warns, fails int
}

func (d *diagnosis) ok(what, msg string) {
	d.oks++
	fmt.Fprintf(d.w, "ok    %s: %s\n", what, msg)
}

func (d *diagnosis) warn(what, msg, fix string) {
	d.warns++
	fmt.Fprintf(d.w, "warn  %s: %s; %s\n", what, msg, fix)
}

func (d *diagnosis) fail(what, msg, fix string) {
	d.fails++
	fmt.Fprintf(d.w, "FIX   %s: %s; %s\n", what, msg, fix)
}

// checkOrigins looks past the rules serve enforces at start, at what makes
// passkeys or links fail in practice.
func checkOrigins(d *diagnosis, cfg config.Config) {
	tlsSelf := cfg.TLSCert != ""
	for _, o := range cfg.RPOrigins {
		u, _ := url.Parse(o)
		if tlsSelf && u.Scheme == "http" {
			d.warn("origins", o+" is http but Sovereign serves TLS itself", "browsers will open https: list the https origin in --rp-origins")
		}
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	ip := net.ParseIP(host)
	public := host == "" || (ip != nil && !ip.IsLoopback())
	switch {
	case public && !tlsSelf:
		d.warn("listen", cfg.Listen+" is reachable from the network over plain http",
			"listen on 127.0.0.1 behind a TLS proxy (docs/operations.md) or give --tls-cert/--tls-key")
	case !public && !tlsSelf && cfg.RPID != "localhost" && len(cfg.TrustedProxies) == 0:
		d.warn("proxy", "behind a proxy without --trusted-proxies, every request seems to come from the proxy (rate limits and the audit log see one address)",
			"set --trusted-proxies 127.0.0.1/32 (the proxy's address)")
	default:
		d.ok("listen", cfg.Listen)
	}
}

func checkTLS(d *diagnosis, cfg config.Config, now time.Time) {
	if cfg.TLSCert == "" {
		return
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		d.fail("tls", err.Error(), "give a PEM certificate chain in --tls-cert and its private key in --tls-key")
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		d.fail("tls", "certificate: "+err.Error(), "give a valid PEM certificate")
		return
	}
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		d.fail("tls", "the certificate expired on "+leaf.NotAfter.Format(time.DateOnly), "renew it (e.g. certbot renew) and restart")
	case left < 14*24*time.Hour:
		d.warn("tls", fmt.Sprintf("the certificate expires in %d days", int(left.Hours()/24)), "renew it soon")
	}
	if err := leaf.VerifyHostname(cfg.RPID); err != nil {
		d.fail("tls", "the certificate does not cover --rp-id "+cfg.RPID, "get a certificate for "+cfg.RPID)
		return
	}
	d.ok("tls", fmt.Sprintf("certificate for %s valid until %s", cfg.RPID, leaf.NotAfter.Format(time.DateOnly)))
}

// checkPermissions reports whether a database exists to check further.
func checkPermissions(d *diagnosis, cfg config.Config) bool {
	fi, err := os.Stat(cfg.DataDir)
	if err != nil {
		d.fail("data directory", cfg.DataDir+" does not exist", "start `sovereign serve` once with this --data-dir, or pass the server's --data-dir/--config")
		return false
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		d.fail("permissions", fmt.Sprintf("%s has mode %04o: others can read the database", cfg.DataDir, m), "chmod 700 "+cfg.DataDir)
	} else {
		d.ok("permissions", fmt.Sprintf("%s is %04o", cfg.DataDir, m))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		d.warn("owner", fmt.Sprintf("%s belongs to uid %d, not to this user (uid %d)", cfg.DataDir, st.Uid, os.Geteuid()),
			"run doctor as the server's user (systemd: systemd-run -p DynamicUser=yes -p StateDirectory=sovereign …)")
	}
	dbi, err := os.Stat(cfg.DBPath())
	if err != nil {
		d.fail("database", "no database at "+cfg.DBPath(), "start `sovereign serve` once, or restore a backup: sovereign restore --from FILE")
		return false
	}
	if m := dbi.Mode().Perm(); m&0o077 != 0 {
		d.fail("permissions", fmt.Sprintf("%s has mode %04o", cfg.DBPath(), m), "chmod 600 "+cfg.DBPath())
	}
	return true
}

func checkDisk(d *diagnosis, dir string) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return
	}
	free := fs.Bavail * uint64(fs.Bsize)
	total := fs.Blocks * uint64(fs.Bsize)
	msg := fmt.Sprintf("%.1f GiB free of %.1f GiB", float64(free)/(1<<30), float64(total)/(1<<30))
	switch {
	case free < 256<<20:
		d.fail("disk", msg, "free space: SQLite needs room for its write-ahead log and backups need a copy's size")
	case free < 1<<30 || (total > 0 && free*10 < total):
		d.warn("disk", msg, "free space before it runs out")
	default:
		d.ok("disk", msg)
	}
}

func checkDatabase(d *diagnosis, cfg config.Config, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := sql.Open("sqlite", "file:"+cfg.DBPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		d.fail("database", err.Error(), "check the file")
		return
	}
	defer db.Close()
	if err := store.IntegrityCheck(ctx, db); err != nil {
		d.fail("database", err.Error(), "stop the server and restore the latest backup: sovereign restore --from FILE")
		return
	}
	d.ok("database", "integrity_check ok")
	pending, unknown, err := store.PendingMigrations(ctx, cfg.DBPath())
	switch {
	case err != nil:
		d.fail("migrations", err.Error(), "is this a Sovereign database?")
	case len(unknown) > 0:
		d.fail("migrations", "the database was migrated by a newer Sovereign ("+strings.Join(unknown, ", ")+")",
			"run that version or newer, or restore a backup made before the upgrade (docs/upgrading.md)")
	case len(pending) > 0:
		d.warn("migrations", fmt.Sprintf("%d pending: %s", len(pending), strings.Join(pending, ", ")),
			"the next start applies them; take a backup first (sovereign backup --to FILE)")
	default:
		d.ok("migrations", "all applied")
	}
	// The clock: the server's timestamps never go backwards; a clock far
	// behind the newest stored time means it was set wrong.
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT max(server_ts) FROM events").Scan(&newest); err == nil && newest.Valid {
		last := time.UnixMicro(newest.Int64)
		if behind := last.Sub(now); behind > time.Minute {
			d.fail("clock", fmt.Sprintf("the clock (%s) is %s behind the newest stored message (%s)",
				now.UTC().Format(time.RFC3339), behind.Round(time.Second), last.UTC().Format(time.RFC3339)),
				"set the clock (timedatectl set-ntp true): sessions, invites and retention depend on it")
			return
		}
	}
	d.ok("clock", now.UTC().Format(time.RFC3339)+" (not behind the stored data)")
}

func checkBackups(d *diagnosis, cfg config.Config, now time.Time) {
	if cfg.BackupDir == "" {
		d.warn("backups", "no scheduled backups", "set --backup-dir (and --backup-every, --backup-keep), or run `sovereign backup --to FILE` from cron")
		return
	}
	entries, err := os.ReadDir(cfg.BackupDir)
	if err != nil {
		d.warn("backups", cfg.BackupDir+" does not exist yet", "the server creates it at its next start")
		return
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "sovereign-") && strings.HasSuffix(e.Name(), ".db") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		d.warn("backups", "none in "+cfg.BackupDir, "the server writes one at start and every --backup-every")
		return
	}
	sort.Strings(names)
	newest := filepath.Join(cfg.BackupDir, names[len(names)-1])
	fi, err := os.Stat(newest)
	if err != nil {
		return
	}
	if age := now.Sub(fi.ModTime()); age > 2*cfg.BackupEvery {
		d.warn("backups", fmt.Sprintf("the newest backup is %s old", age.Round(time.Minute)), "check the server's log for \"scheduled backup failed\"")
		return
	}
	d.ok("backups", fmt.Sprintf("%d in %s, newest %s", len(names), cfg.BackupDir, names[len(names)-1]))
}
