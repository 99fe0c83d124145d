package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// partSuffix names an upload in progress; the complete blob has the bare id.
const partSuffix = ".part"

// Local stores blobs as files in one directory (0700, files 0600): an
// upload is appended to id.part and fsynced before each Append returns;
// Commit renames it to id and fsyncs the directory, so a crash leaves
// either the part file (resumable, never served) or the whole blob.
type Local struct {
	dir string
	// mu serialises appends and commits of one id (two connections
	// resuming the same upload at once).
	mu    sync.Mutex
	locks map[string]*idLock
}

// NewLocal creates dir (0700) when missing and returns a store in it.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create attachments directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restrict attachments directory %s: %w", dir, err)
		}
	}
	return &Local{dir: dir, locks: map[string]*idLock{}}, nil
}

// Dir is the directory of the files.
func (l *Local) Dir() string { return l.dir }

// validID accepts the server's ids only (letters, digits, '-'), so an id
// can never name a path outside the directory.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (l *Local) lock(id string) func() {
	l.mu.Lock()
	m, ok := l.locks[id]
	if !ok {
		m = new(idLock)
		l.locks[id] = m
	}
	m.refs++
	l.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		l.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}

type idLock struct {
	sync.Mutex
	refs int // guarded by Local.mu
}

func (l *Local) final(id string) string { return filepath.Join(l.dir, id) }
func (l *Local) part(id string) string  { return filepath.Join(l.dir, id+partSuffix) }

// Status implements Blobs.
func (l *Local) Status(_ context.Context, id string) (int64, bool, error) {
	if !validID(id) {
		return 0, false, ErrNotFound
	}
	if fi, err := os.Stat(l.final(id)); err == nil {
		return fi.Size(), true, nil
	}
	fi, err := os.Stat(l.part(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return fi.Size(), false, nil
}

// Append implements Blobs.
func (l *Local) Append(ctx context.Context, id string, offset int64, r io.Reader, limit int64) (int64, error) {
	if !validID(id) {
		return 0, ErrNotFound
	}
	unlock := l.lock(id)
	defer unlock()
	if fi, err := os.Stat(l.final(id)); err == nil {
		return fi.Size(), &ErrOffset{Committed: fi.Size()}
	}
	f, err := os.OpenFile(l.part(id), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	if offset != size {
		return size, &ErrOffset{Committed: size}
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return size, err
	}
	n, copyErr := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, limit))
	if n == 0 && copyErr == nil {
		return size, nil
	}
	// Keep what arrived, durably, even when the connection dropped: the
	// client resumes from the length it is told.
	if err := f.Sync(); err != nil {
		return size, fmt.Errorf("sync upload: %w", err)
	}
	if size == 0 {
		if err := syncDir(l.dir); err != nil {
			return size + n, err
		}
	}
	return size + n, copyErr
}

// Commit implements Blobs.
func (l *Local) Commit(_ context.Context, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	unlock := l.lock(id)
	defer unlock()
	if _, err := os.Stat(l.final(id)); err == nil {
		return nil
	}
	if err := os.Rename(l.part(id), l.final(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// An empty blob was never appended to.
			f, cerr := os.OpenFile(l.final(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if cerr != nil {
				return fmt.Errorf("create empty blob: %w", cerr)
			}
			if cerr = f.Sync(); cerr != nil {
				_ = f.Close()
				return cerr
			}
			if cerr = f.Close(); cerr != nil {
				return cerr
			}
		} else {
			return fmt.Errorf("commit blob: %w", err)
		}
	}
	return syncDir(l.dir)
}

// Open implements Blobs.
func (l *Local) Open(_ context.Context, id string) (Blob, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	f, err := os.Open(l.final(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &localBlob{File: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

// Delete implements Blobs.
func (l *Local) Delete(_ context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	unlock := l.lock(id)
	defer unlock()
	var errs []error
	for _, p := range []string{l.final(id), l.part(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List implements Blobs. Files that are not blobs are skipped.
func (l *Local) List(ctx context.Context, fn func(Info) error) error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("list attachments: %w", err)
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := e.Name()
		id, part := strings.CutSuffix(name, partSuffix)
		if !e.Type().IsRegular() || !validID(id) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		if err := fn(Info{ID: id, Complete: !part, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

type localBlob struct {
	*os.File
	size int64
	mod  time.Time
}

func (b *localBlob) Size() int64        { return b.size }
func (b *localBlob) ModTime() time.Time { return b.mod }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync attachments directory: %w", err)
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
