package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// AttachmentOptions shape the attachments scenario.
type AttachmentOptions struct {
	Bytes     int64 // size of the attachment (ciphertext as the server sees it)
	PartBytes int64 // bytes per PUT of the parted upload (the TypeScript SDK's default is 1 MiB)
}

// Attachments measures the attachment path with one file of o.Bytes:
// uploaded in parts of o.PartBytes (as the SDK does) and downloaded in one
// GET, then uploaded again in a single PUT of the whole file and
// downloaded again; MiB/s each way and the server's peak RSS during each
// phase above its RSS before. A server that buffered a request or an
// answer in memory would show the file's size in that peak. The bytes are
// random (the server stores ciphertext it cannot tell from random); each
// download's SHA-256 is checked against the upload's.
func Attachments(ctx context.Context, env *Env, o AttachmentOptions) (*Result, error) {
	if o.Bytes <= 0 || o.PartBytes <= 0 {
		return nil, errors.New("attachments: --attachment-bytes and --attachment-part-bytes must be positive")
	}
	accs, err := env.Accounts(ctx, "att", 1)
	if err != nil {
		return nil, err
	}
	acc := accs[0]
	g, err := CreateGroup(ctx, env.Client, acc)
	if err != nil {
		return nil, err
	}
	res := env.newResult("attachments", map[string]any{"bytes": o.Bytes, "part_bytes": o.PartBytes})
	mib := float64(o.Bytes) / (1 << 20)
	var base int64
	if env.PID != 0 {
		if base, err = RSS(env.PID); err != nil {
			return nil, fmt.Errorf("read the server's RSS: %w", err)
		}
		res.Add("server RSS before", float64(base)/(1<<20), "MiB", "")
	}
	for _, mode := range []struct {
		name string
		part int64
	}{{fmt.Sprintf("%d KiB parts", o.PartBytes>>10), o.PartBytes}, {"one PUT", o.Bytes}} {
		seed := uint64(time.Now().UnixNano())
		id, err := declareAttachment(ctx, env.Client, g, acc, o.Bytes)
		if err != nil {
			return nil, err
		}
		var up time.Duration
		upPeak, err := env.peakRSS(func() error {
			t0 := time.Now()
			err := putAttachment(ctx, env.Client, acc, id, o.Bytes, mode.part, seed)
			up = time.Since(t0)
			return err
		})
		if err != nil {
			return nil, err
		}
		var down time.Duration
		var sum []byte
		downPeak, err := env.peakRSS(func() error {
			t0 := time.Now()
			var err error
			sum, err = getAttachment(ctx, env.Client, acc, id, o.Bytes)
			down = time.Since(t0)
			return err
		})
		if err != nil {
			return nil, err
		}
		want := sha256.New()
		if _, err := io.Copy(want, io.LimitReader(rand.NewChaCha8(seedBytes(seed)), o.Bytes)); err != nil {
			return nil, err
		}
		if !bytes.Equal(sum, want.Sum(nil)) {
			return nil, fmt.Errorf("attachments: the download of %s differs from its upload", id)
		}
		res.Add("upload ("+mode.name+")", mib/up.Seconds(), "MiB/s", "")
		res.Add("download (one GET) of the "+mode.name+" upload", mib/down.Seconds(), "MiB/s", "")
		if env.PID != 0 {
			res.Add("server peak RSS above before, upload ("+mode.name+")", float64(upPeak-base)/(1<<20), "MiB", fmt.Sprintf("< %g", mib/4))
			res.Add("server peak RSS above before, download of the "+mode.name+" upload", float64(downPeak-base)/(1<<20), "MiB", fmt.Sprintf("< %g", mib/4))
		}
	}
	res.Notes = append(res.Notes, "peak RSS: VmRSS of the server sampled every 5 ms during the phase; a buffered file would add its size")
	return res, nil
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// peakRSS runs f while sampling the server's RSS; returns the highest
// reading (0 when the pid is unknown).
func (e *Env) peakRSS(f func() error) (int64, error) {
	if e.PID == 0 {
		return 0, f()
	}
	var (
		mu   sync.Mutex
		peak int64
	)
	sample := func() {
		if v, err := RSS(e.PID); err == nil {
			mu.Lock()
			peak = max(peak, v)
			mu.Unlock()
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	err := f()
	close(stop)
	<-done
	sample()
	return peak, err
}

func declareAttachment(ctx context.Context, c *Client, g *Group, acc Account, size int64) (string, error) {
	var a struct {
		ID string `json:"id"`
	}
	body := map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(g.ID), "size": size}
	if _, err := c.Do(ctx, http.MethodPost, "/v1/attachments", acc.Token, body, &a); err != nil {
		return "", fmt.Errorf("declare an attachment: %w", err)
	}
	return a.ID, nil
}

// putAttachment streams size random bytes (ChaCha8 from seed) in PUTs of
// part bytes, never holding more than the HTTP client's buffer.
func putAttachment(ctx context.Context, c *Client, acc Account, id string, size, part int64, seed uint64) error {
	src := rand.NewChaCha8(seedBytes(seed))
	for off := int64(0); off < size; off += part {
		n := min(part, size-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v1/attachments/%s?offset=%d", c.Base, id, off), io.LimitReader(src, n))
		if err != nil {
			return err
		}
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", "Bearer "+acc.Token)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return fmt.Errorf("upload at %d: %w", off, err)
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &StatusError{Method: http.MethodPut, Path: "/v1/attachments/" + id, Status: resp.StatusCode, Body: string(raw)}
		}
	}
	return nil
}

// getAttachment downloads an attachment in one GET and returns the
// SHA-256 of its body.
func getAttachment(ctx context.Context, c *Client, acc Account, id string, size int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/v1/attachments/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+acc.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &StatusError{Method: http.MethodGet, Path: "/v1/attachments/" + id, Status: resp.StatusCode, Body: string(raw)}
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if n != size {
		return nil, fmt.Errorf("download: %d bytes, want %d", n, size)
	}
	return h.Sum(nil), nil
}
