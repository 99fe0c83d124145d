package bench

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// PushReceiver is a minimal Web Push service for the benchmark: plain HTTP
// on loopback (the started server allows 127.0.0.1 with
// --push-allow-hosts), answering 201 Created to every push and counting
// them. The encrypted payloads are not opened: the push package's tests
// (push/pushtest) check their content; here only the rate counts.
type PushReceiver struct {
	URL    string
	srv    *http.Server
	pushes atomic.Int64
	bytes  atomic.Int64
}

// StartPushReceiver listens on a free loopback port.
func StartPushReceiver() (*PushReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &PushReceiver{URL: "http://" + ln.Addr().String()}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 8192))
		p.bytes.Add(n)
		p.pushes.Add(1)
		w.WriteHeader(http.StatusCreated)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Pushes is how many pushes arrived so far.
func (p *PushReceiver) Pushes() int64 { return p.pushes.Load() }

// Close stops the receiver.
func (p *PushReceiver) Close() { _ = p.srv.Close() }

// Subscribe registers a fresh subscription (new P-256 key and auth secret,
// as a browser makes) for the account's device.
func (p *PushReceiver) Subscribe(ctx context.Context, c *Client, acc Account) error {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	body := map[string]any{
		"endpoint": p.URL + "/push/" + acc.DeviceID,
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
			"auth":   base64.RawURLEncoding.EncodeToString(auth),
		},
	}
	if _, err := c.Do(ctx, "PUT", "/v1/me/devices/current/push", acc.Token, body, nil); err != nil {
		return fmt.Errorf("subscribe %s to push: %w", acc.Username, err)
	}
	return nil
}
