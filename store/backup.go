package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/sovereign-im/sovereign/migrations"
)

// Backups. A plain copy of a WAL database taken while the server writes is
// not safe: the main file and the write-ahead log are copied at different
// moments. VACUUM INTO instead writes a consistent snapshot (one read
// transaction) into a new file while the writer goes on, so a backup holds
// every transaction committed before it began. Each copy is written under
// a temporary name with mode 0600, checked with PRAGMA integrity_check,
// synced and only then renamed to its final name.

// BackupInfo describes a verified database copy.
type BackupInfo struct {
	Path       string
	Bytes      int64
	Migrations int // applied migrations recorded in the copy
	Took       time.Duration
}

// Backup writes a consistent copy of the database at dbPath to dest (which
// must not exist) and verifies it. The server may be running.
func Backup(ctx context.Context, dbPath, dest string) (*BackupInfo, error) {
	start := time.Now()
	if _, err := os.Stat(dbPath); err != nil {
		return nil, &NoDatabaseError{Path: dbPath}
	}
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("backup: %s exists; choose a new file name", dest)
	}
	tmp, err := reserveTemp(dest)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp)
		}
	}()
	db, err := sql.Open("sqlite", "file:"+uriPath(dbPath)+"?"+backupDSNParams().Encode())
	if err != nil {
		return nil, fmt.Errorf("backup: open %s: %w", dbPath, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return nil, fmt.Errorf("backup: VACUUM INTO: %w", err)
	}
	info, err := Verify(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("backup: the copy failed verification: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return nil, err
	}
	info.Path, info.Took = dest, time.Since(start)
	return info, nil
}

// reserveTemp creates an empty 0600 file beside dest for VACUUM INTO to
// fill (it accepts an empty file and keeps its mode, so the copy is never
// readable by others, whatever the umask).
func reserveTemp(dest string) (string, error) {
	dir := filepath.Dir(dest)
	for i := 0; i < 100; i++ {
		name := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%d", filepath.Base(dest), os.Getpid(), time.Now().UnixNano()%1e9))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("backup: create %s: %w", name, err)
		}
		_ = f.Close()
		return name, nil
	}
	return "", fmt.Errorf("backup: no free temporary name beside %s", dest)
}

func backupDSNParams() url.Values {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(5000)")
	return v
}

// Verify opens a database file read-only and checks it: PRAGMA
// integrity_check answers "ok" and it records applied migrations, none of
// them unknown to this binary.
func Verify(ctx context.Context, path string) (*BackupInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	v.Add("mode", "ro")
	v.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if err := IntegrityCheck(ctx, db); err != nil {
		return nil, err
	}
	applied, err := appliedMigrations(ctx, db)
	if err != nil {
		return nil, err
	}
	if unknown := unknownMigrations(applied); len(unknown) > 0 {
		return nil, fmt.Errorf("it was written by a newer Sovereign (migrations %s are unknown to this binary): use that version or newer",
			strings.Join(unknown, ", "))
	}
	return &BackupInfo{Path: path, Bytes: fi.Size(), Migrations: len(applied)}, nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns its findings as
// an error unless it answers "ok".
func IntegrityCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity_check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return fmt.Errorf("integrity_check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// appliedMigrations lists the migration names a database records.
func appliedMigrations(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT name FROM bun_migrations ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("not a Sovereign database (no migrations recorded): %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// embeddedMigrations are the names of the migrations this binary carries.
func embeddedMigrations() ([]string, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	var out []string
	for _, m := range ms.Sorted() {
		out = append(out, m.Name)
	}
	return out, nil
}

func unknownMigrations(applied []string) []string {
	known, err := embeddedMigrations()
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for _, n := range known {
		set[n] = true
	}
	var out []string
	for _, n := range applied {
		if !set[n] {
			out = append(out, n)
		}
	}
	return out
}

// PendingMigrations opens the database at path read-only and lists the
// embedded migrations it has not applied yet (the next start applies
// them), and those it has applied that this binary does not know.
func PendingMigrations(ctx context.Context, path string) (pending, unknown []string, err error) {
	v := url.Values{}
	v.Add("mode", "ro")
	v.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?"+v.Encode())
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	applied, err := appliedMigrations(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	known, err := embeddedMigrations()
	if err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for _, n := range applied {
		have[n] = true
	}
	for _, n := range known {
		if !have[n] {
			pending = append(pending, n)
		}
	}
	return pending, unknownMigrations(applied), nil
}

// Restore copies a verified backup into an empty data directory as the
// database file dbPath (mode 0600, directory 0700). It refuses a data
// directory that already holds a database.
func Restore(ctx context.Context, from, dbPath string) (*BackupInfo, error) {
	info, err := Verify(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("restore: %s: %w", from, err)
	}
	dir := filepath.Dir(dbPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore: create %s: %w", dir, err)
	}
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if _, err := os.Lstat(p); err == nil {
			return nil, &DataDirNotEmptyError{Path: p}
		}
	}
	tmp, err := reserveTemp(dbPath)
	if err != nil {
		return nil, err
	}
	if err := copyInto(from, tmp); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	info.Path = dbPath
	return info, nil
}

// DataDirNotEmptyError reports that Restore found a database in place.
type DataDirNotEmptyError struct{ Path string }

func (e *DataDirNotEmptyError) Error() string {
	return e.Path + " exists: restore only into an empty data directory (move the old one away first)"
}

func copyInto(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Backup writes a verified consistent copy of this store's database to
// dest (see the package function Backup).
func (s *Store) Backup(ctx context.Context, dest string) (*BackupInfo, error) {
	return Backup(ctx, s.path, dest)
}
