// Package push sends Web Push wake-ups (RFC 8030 delivery, RFC 8291
// message encryption, RFC 8292 VAPID) to the devices that have a push
// subscription and no open stream. The store queues them durably in the
// same transaction as the event (push_outbox); the Worker here drains that
// outbox after commit, outside the single writer: one send in flight per
// device, at most one per MinGap while undelivered, 404/410 deletes the
// subscription, 429/5xx back off honouring Retry-After. Every URL it calls
// goes through an egress.Policy (no SSRF).
//
// A push tells the push service and the browser vendor nothing useful: its
// encrypted payload is the constant {"t":"wake"} padded to a fixed record
// size (no group, sender, size or count), its Topic is constant, and the
// only identity it carries is the server's VAPID key.
package push

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/sovereign-im/sovereign/store"
)

// SecretVAPID names the server secret the VAPID key pair is derived from.
const SecretVAPID = "vapid"

// VAPID is the server's application-server key pair (RFC 8292): an ECDSA
// P-256 key, as base64url without padding, the forms webpush-go and the
// browsers' applicationServerKey take.
type VAPID struct {
	// Public is the uncompressed point (65 bytes) the browser subscribes
	// with.
	Public string
	// Private is the 32-byte scalar.
	Private string
}

// DeriveVAPID derives the key pair from a 32-byte server secret: the secret
// (hashed again in the vanishingly rare case it is not a valid scalar) is
// the private scalar. The same secret always gives the same key, so
// subscriptions survive restarts.
func DeriveVAPID(secret []byte) (VAPID, error) {
	if len(secret) < 32 {
		return VAPID{}, fmt.Errorf("vapid secret: want 32 bytes, got %d", len(secret))
	}
	d := secret[:32]
	for range 16 {
		k, err := ecdh.P256().NewPrivateKey(d)
		if err == nil {
			return VAPID{
				Public:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
				Private: base64.RawURLEncoding.EncodeToString(d),
			}, nil
		}
		h := sha256.Sum256(d)
		d = h[:]
	}
	return VAPID{}, fmt.Errorf("vapid secret: no valid P-256 scalar")
}

// LoadVAPID returns the server's VAPID key pair, creating its secret on
// first start (kept with the other server secrets).
func LoadVAPID(ctx context.Context, st *store.Store) (VAPID, error) {
	secret, err := st.ServerSecret(ctx, SecretVAPID)
	if err != nil {
		return VAPID{}, err
	}
	return DeriveVAPID(secret)
}
