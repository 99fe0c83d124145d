// Package blobstore keeps the bytes of attachments: opaque, client-encrypted
// blobs named by the server's attachment ids. It knows nothing of groups,
// members or SQL; the store owns the metadata and the quotas.
//
// A blob is written by appends at its committed length (resumable uploads),
// becomes visible only when committed as a whole, and is immutable after.
// Local keeps files in a directory; an S3-compatible object store can
// implement Blobs too (docs/attachments.md says how).
package blobstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound reports a blob (or an upload) that does not exist.
var ErrNotFound = errors.New("blob not found")

// ErrOffset reports an append that does not start at the committed length.
type ErrOffset struct{ Committed int64 }

func (e *ErrOffset) Error() string { return "append does not start at the committed length" }

// Blobs stores attachment bytes.
type Blobs interface {
	// Status returns how many bytes of the upload id are durably stored
	// and whether the blob is committed (complete). An id never appended
	// to has length 0 and is not complete.
	Status(ctx context.Context, id string) (committed int64, complete bool, err error)
	// Append writes r's bytes, at most limit of them, at offset, which
	// must equal the committed length (else *ErrOffset). What was read
	// before an error in r is kept and made durable (a dropped connection
	// leaves a resumable upload); the new committed length is returned with
	// any error. Bytes are durable when Append returns.
	Append(ctx context.Context, id string, offset int64, r io.Reader, limit int64) (committed int64, err error)
	// Commit makes the upload the complete blob id, atomically: a reader
	// sees the whole blob or none of it. Committing a committed blob is a
	// no-op.
	Commit(ctx context.Context, id string) error
	// Open returns a committed blob for ranged reads.
	Open(ctx context.Context, id string) (Blob, error)
	// Delete removes the blob or upload id; a missing one is no error.
	Delete(ctx context.Context, id string) error
	// List calls fn for every stored blob and upload.
	List(ctx context.Context, fn func(Info) error) error
}

// Blob is a committed blob opened for reading.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// Info describes a stored blob or upload.
type Info struct {
	ID       string
	Complete bool
	Size     int64
	ModTime  time.Time
}
