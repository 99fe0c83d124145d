package handlers_test

import (
	"strconv"
	"testing"

	"github.com/sovereign-im/sovereign/handlers"
)

// FuzzParseUploadRange feeds untrusted offsets and Content-Range headers to
// the upload range parser: it never panics, and what it accepts lies within
// the declared size with the body fitting after it.
func FuzzParseUploadRange(f *testing.F) {
	for _, s := range []struct {
		q, cr string
		cl    int64
	}{{"0", "", 10}, {"", "bytes 0-9/100", 10}, {"5", "bytes 5-9/100", 5}, {"", "bytes */100", 0},
		{"-1", "", 0}, {"999999999999999999999", "", 0}, {"", "bytes 9-0/100", 0}, {"", "BYTES 0-0/*", 1}} {
		f.Add(s.q, s.cr, s.cl, int64(100))
	}
	f.Fuzz(func(t *testing.T, q, cr string, cl, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		off, err := handlers.ParseUploadRange(q, cr, cl, size)
		if err != nil {
			return
		}
		if off < 0 || off > size {
			t.Fatalf("offset %d outside 0..%d", off, size)
		}
		if cl > 0 && cl > size-off {
			t.Fatalf("body of %d bytes accepted at %d of %d", cl, off, size)
		}
		if q != "" {
			if n, perr := strconv.ParseInt(q, 10, 64); perr != nil || n != off {
				t.Fatalf("offset %q accepted as %d", q, off)
			}
		}
	})
}
