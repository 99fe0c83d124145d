package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newLocal(t *testing.T) *Local {
	t.Helper()
	l, err := NewLocal(filepath.Join(t.TempDir(), "attachments"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalAppendCommitOpen(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	id := "0b3c8a4e-3f1e-4d0c-9a57-5f8e2c1d7a90"
	if n, done, err := l.Status(ctx, id); n != 0 || done || err != nil {
		t.Fatalf("fresh status: %d %v %v", n, done, err)
	}
	if n, err := l.Append(ctx, id, 0, strings.NewReader("hello "), 100); n != 6 || err != nil {
		t.Fatalf("append: %d %v", n, err)
	}
	var oe *ErrOffset
	if _, err := l.Append(ctx, id, 3, strings.NewReader("x"), 100); !errors.As(err, &oe) || oe.Committed != 6 {
		t.Fatalf("wrong offset: %v", err)
	}
	// limit bounds what one append takes.
	if n, err := l.Append(ctx, id, 6, strings.NewReader("world!!!"), 5); n != 11 || err != nil {
		t.Fatalf("append 2: %d %v", n, err)
	}
	// Until committed, the upload is never readable (a crash here leaves
	// no half blob visible).
	if _, err := l.Open(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open before commit: %v", err)
	}
	if err := l.Commit(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, id); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if n, done, _ := l.Status(ctx, id); n != 11 || !done {
		t.Fatalf("status after commit: %d %v", n, done)
	}
	if _, err := l.Append(ctx, id, 11, strings.NewReader("x"), 1); !errors.As(err, &oe) {
		t.Fatalf("append after commit: %v", err)
	}
	b, err := l.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	b.Close()
	if string(got) != "hello world" || b.Size() != 11 {
		t.Fatalf("read %q", got)
	}
	fi, _ := os.Stat(filepath.Join(l.Dir(), id))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	var listed []Info
	_ = l.List(ctx, func(i Info) error { listed = append(listed, i); return nil })
	if len(listed) != 1 || listed[0].ID != id || !listed[0].Complete {
		t.Fatalf("list: %+v", listed)
	}
	if err := l.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
}

type brokenReader struct{ r io.Reader }

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestLocalKeepsBytesOfAnInterruptedAppend(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	id := "a"
	n, err := l.Append(ctx, id, 0, &brokenReader{bytes.NewReader(make([]byte, 4096))}, 10000)
	if n != 4096 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("interrupted append: %d %v", n, err)
	}
	if c, done, _ := l.Status(ctx, id); c != 4096 || done {
		t.Fatalf("status: %d %v", c, done)
	}
}

func TestLocalRefusesPathIDs(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, id := range []string{"", "../x", "a/b", ".part", strings.Repeat("a", 65)} {
		if _, err := l.Append(ctx, id, 0, strings.NewReader("x"), 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("id %q accepted: %v", id, err)
		}
	}
}

func TestLocalConcurrentAppendsOfOneID(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	var wg sync.WaitGroup
	var ok sync.Map
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, "x", 0, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 1000)), 1000); err == nil {
				ok.Store(i, true)
			}
		}()
	}
	wg.Wait()
	n := 0
	ok.Range(func(any, any) bool { n++; return true })
	if c, _, _ := l.Status(ctx, "x"); n != 1 || c != 1000 {
		t.Fatalf("%d appends at offset 0 succeeded; length %d", n, c)
	}
}
