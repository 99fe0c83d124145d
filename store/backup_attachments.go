package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Attachment files in backups. The database copy is taken first (one
// snapshot); then the file of every attachment that copy records as
// complete is copied from the data directory. A completed file never
// changes (it is renamed into place before its row is marked complete),
// so each copied file is the one the snapshot names. Uploads in progress
// are not copied (their rows in the copy are orphans the server deletes
// after a day, as it does any incomplete upload); a file deleted between
// the snapshot and its copy (its group was deleted meanwhile) is reported
// as missing and its row stays behind: the server answers 404 for it.

// AttachmentsSuffix names the directory of attachment files next to a
// backup file: FILE.attachments.
const AttachmentsSuffix = ".attachments"

// FilesInfo describes copied attachment files.
type FilesInfo struct {
	Path    string
	Files   int
	Bytes   int64
	Missing []string // complete in the database copy, gone from the data directory
}

// BackupAttachments copies into destDir (which must not exist) the file
// of every attachment the database copy at backupDB records as complete,
// from srcDir (the server's attachments directory): each file 0600,
// written and fsynced under a temporary directory renamed to destDir at
// the end. With no complete attachment nothing is created (Files 0).
// With link, a file is hard-linked when srcDir and destDir share a file
// system (a completed attachment never changes, so a link is a copy that
// costs no space; the scheduled backups keep several) and copied
// otherwise.
func BackupAttachments(ctx context.Context, backupDB, srcDir, destDir string, link bool) (*FilesInfo, error) {
	if _, err := os.Lstat(destDir); err == nil {
		return nil, fmt.Errorf("backup: %s exists; choose a new file name", destDir)
	}
	ids, sizes, err := completeAttachments(ctx, backupDB)
	if err != nil {
		return nil, err
	}
	info := &FilesInfo{Path: destDir}
	if len(ids) == 0 {
		return info, nil
	}
	tmp, err := reserveTemp(destDir)
	if err != nil {
		return nil, err
	}
	// reserveTemp created a file of that unique name: a directory takes its place.
	if err := os.Remove(tmp); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("backup: create %s: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := linkOrCopy(filepath.Join(srcDir, id), filepath.Join(tmp, id), link)
		if errors.Is(err, fs.ErrNotExist) {
			info.Missing = append(info.Missing, id)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: attachment %s: %w", id, err)
		}
		if n != sizes[i] {
			return nil, fmt.Errorf("backup: attachment %s is %d bytes, its row says %d", id, n, sizes[i])
		}
		info.Files++
		info.Bytes += n
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, destDir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(destDir)); err != nil {
		return nil, err
	}
	return info, nil
}

// completeAttachments lists the ids and sizes of the complete attachments
// a database file records.
func completeAttachments(ctx context.Context, path string) ([]string, []int64, error) {
	v := url.Values{}
	v.Add("mode", "ro")
	v.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", "file:"+uriPath(path)+"?"+v.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT id, size FROM attachments WHERE completed_at IS NOT NULL ORDER BY id")
	if err != nil {
		return nil, nil, fmt.Errorf("list the attachments of %s: %w", path, err)
	}
	defer rows.Close()
	var ids []string
	var sizes []int64
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			return nil, nil, fmt.Errorf("list the attachments of %s: %w", path, err)
		}
		if id == "" || strings.ContainsAny(id, `/\.`) {
			return nil, nil, fmt.Errorf("attachment id %q in %s cannot name a file", id, path)
		}
		ids = append(ids, id)
		sizes = append(sizes, size)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list the attachments of %s: %w", path, err)
	}
	return ids, sizes, nil
}

// RestoreAttachments copies the files of a backup's attachments directory
// (srcDir, as BackupAttachments wrote it) into destDir, the data
// directory's attachments directory, which must be missing or empty.
// Files are 0600 in a 0700 directory, fsynced.
func RestoreAttachments(srcDir, destDir string) (*FilesInfo, error) {
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := CheckAttachmentsEmpty(destDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(destDir, 0o700); err != nil {
		return nil, fmt.Errorf("restore: create %s: %w", destDir, err)
	}
	info := &FilesInfo{Path: destDir}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		n, err := copyFile(filepath.Join(srcDir, e.Name()), filepath.Join(destDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("restore: attachment %s: %w", e.Name(), err)
		}
		info.Files++
		info.Bytes += n
	}
	if err := syncDir(destDir); err != nil {
		return nil, err
	}
	return info, nil
}

// CheckAttachmentsEmpty refuses an attachments directory that holds files
// (a restore never mixes two servers' files).
func CheckAttachmentsEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if len(entries) > 0 {
		return &DataDirNotEmptyError{Path: dir}
	}
	return nil
}

// linkOrCopy hard-links src as dst when link is set and the file system
// allows it, else copies it; returns the file's size.
func linkOrCopy(src, dst string, link bool) (int64, error) {
	if link {
		if err := os.Link(src, dst); err == nil {
			fi, err := os.Stat(dst)
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		} else if errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	return copyFile(src, dst)
}

// copyFile copies src to a new file dst (0600, fsynced); returns the bytes copied.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return n, err
	}
	return n, nil
}
