// Package pushtest is a real Web Push service for tests: an RFC 8030
// receiver over TLS that mints subscriptions (an endpoint plus the
// user agent's P-256 key pair and auth secret, as a browser would), checks
// every push's VAPID authorization (RFC 8292: ES256 JWT signature with the
// key in k=, aud equal to the endpoint's origin, exp in the future and
// within 24 hours, a sub claim) and decrypts its aes128gcm payload (RFC
// 8291 / RFC 8188) with the subscription's private key. Tests read what
// arrived and choose what the service answers.
package pushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Push is one push the service accepted (or answered with a chosen status).
type Push struct {
	SubscriptionID string
	// Plaintext is the decrypted payload without padding.
	Plaintext []byte
	// BodyLen is the size of the encrypted body on the wire.
	BodyLen int
	TTL     int
	Urgency string
	Topic   string
	// Headers are every request header (to check nothing else leaks).
	Headers http.Header
	// Claims are the VAPID JWT's claims.
	Claims map[string]any
	// VAPIDKey is the k= parameter (base64url public key).
	VAPIDKey string
	// Status is what the service answered.
	Status int
	At     time.Time
}

// Subscription is what a browser's PushSubscription.toJSON() holds, plus
// the private half the receiver decrypts with.
type Subscription struct {
	ID       string `json:"-"`
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`

	priv *ecdh.PrivateKey
	auth []byte
}

// Response is what the service answers a push with.
type Response struct {
	Status     int
	RetryAfter string
}

// Server is the push service.
type Server struct {
	*httptest.Server
	t testing.TB

	mu       sync.Mutex
	subs     map[string]*Subscription
	pushes   []Push
	failures []error
	respond  func(subID string, n int) Response
	counts   map[string]int
	notify   chan struct{}
	// VAPIDPublicKey, when set, is the only key accepted.
	vapidKey string
}

// New starts a TLS push service; Close it when done (t.Cleanup does).
func New(t testing.TB) *Server {
	s := &Server{t: t, subs: map[string]*Subscription{}, counts: map[string]int{}, notify: make(chan struct{}, 1)}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// RootCAs trusts the service's certificate.
func (s *Server) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}

// ExpectVAPIDKey makes the service refuse (401) pushes signed by any other
// key.
func (s *Server) ExpectVAPIDKey(k string) {
	s.mu.Lock()
	s.vapidKey = k
	s.mu.Unlock()
}

// Respond sets how the service answers: f gets the subscription id and
// the push's 1-based number for that subscription. nil restores 201.
func (s *Server) Respond(f func(subID string, n int) Response) {
	s.mu.Lock()
	s.respond = f
	s.mu.Unlock()
}

// Subscribe mints a subscription as a browser would.
func (s *Server) Subscribe() *Subscription {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	idb := make([]byte, 12)
	_, _ = rand.Read(idb)
	sub := &Subscription{ID: base64.RawURLEncoding.EncodeToString(idb), priv: priv, auth: auth}
	sub.Endpoint = s.URL + "/push/" + sub.ID
	sub.Keys.P256dh = base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	sub.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	s.mu.Lock()
	s.subs[sub.ID] = sub
	s.mu.Unlock()
	return sub
}

// Pushes returns every push received so far.
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// PushesFor returns the pushes received for one subscription.
func (s *Server) PushesFor(sub *Subscription) []Push {
	var out []Push
	for _, p := range s.Pushes() {
		if p.SubscriptionID == sub.ID {
			out = append(out, p)
		}
	}
	return out
}

// Failures are the pushes the service refused as malformed (bad VAPID,
// undecryptable payload): a correct server has none.
func (s *Server) Failures() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.failures...)
}

// Wait polls until cond holds or the deadline passes (then fails the test).
func (s *Server) Wait(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("push service: timed out after %s waiting for %s (pushes %d, failures %v)", d, what, len(s.Pushes()), s.Failures())
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) fail(w http.ResponseWriter, status int, err error) {
	s.mu.Lock()
	s.failures = append(s.failures, err)
	s.mu.Unlock()
	http.Error(w, err.Error(), status)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	if !ok || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	sub := s.subs[id]
	want := s.vapidKey
	s.mu.Unlock()
	if sub == nil {
		http.Error(w, "no such subscription", http.StatusGone)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8192))
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	claims, key, err := verifyVAPID(r.Header.Get("Authorization"), s.URL, time.Now())
	if err != nil {
		s.fail(w, http.StatusUnauthorized, fmt.Errorf("vapid: %w", err))
		return
	}
	if want != "" && key != want {
		s.fail(w, http.StatusUnauthorized, errors.New("vapid: unexpected key"))
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("content-encoding %q", ce))
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("bad TTL %q", r.Header.Get("TTL")))
		return
	}
	plain, err := Decrypt(body, sub.priv, sub.auth)
	if err != nil {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("decrypt: %w", err))
		return
	}
	s.mu.Lock()
	s.counts[id]++
	n := s.counts[id]
	resp := Response{Status: http.StatusCreated}
	if s.respond != nil {
		resp = s.respond(id, n)
	}
	s.pushes = append(s.pushes, Push{SubscriptionID: id, Plaintext: plain, BodyLen: len(body), TTL: ttl,
		Urgency: r.Header.Get("Urgency"), Topic: r.Header.Get("Topic"), Headers: r.Header.Clone(), Claims: claims,
		VAPIDKey: key, Status: resp.Status, At: time.Now()})
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	if resp.Status == http.StatusCreated {
		w.Header().Set("Location", s.URL+"/message/"+id)
	}
	w.WriteHeader(resp.Status)
}

// verifyVAPID checks an RFC 8292 "vapid t=JWT, k=KEY" authorization for the
// push service at origin.
func verifyVAPID(h, origin string, now time.Time) (map[string]any, string, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return nil, "", fmt.Errorf("authorization scheme is not vapid: %q", h)
	}
	var token, key string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			token = v
		case "k":
			key = v
		}
	}
	if token == "" || key == "" {
		return nil, "", errors.New("missing t= or k=")
	}
	kb, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return nil, "", fmt.Errorf("k: %w", err)
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), kb) //nolint:staticcheck // parsing an uncompressed point
	if x == nil {
		return nil, "", errors.New("k is not an uncompressed P-256 point")
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, "", errors.New("jwt: not three parts")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := decodeJSON(parts[0], &hdr); err != nil || hdr.Alg != "ES256" {
		return nil, "", fmt.Errorf("jwt header: alg %q, %v", hdr.Alg, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, "", errors.New("jwt: signature is not 64 bytes of base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, "", errors.New("jwt: bad signature")
	}
	var claims map[string]any
	if err := decodeJSON(parts[1], &claims); err != nil {
		return nil, "", fmt.Errorf("jwt claims: %w", err)
	}
	if aud, _ := claims["aud"].(string); aud != origin {
		return nil, "", fmt.Errorf("jwt: aud %q, want %q", aud, origin)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return nil, "", errors.New("jwt: no exp")
	}
	if e := time.Unix(int64(exp), 0); !e.After(now) || e.After(now.Add(24*time.Hour)) {
		return nil, "", fmt.Errorf("jwt: exp %s not within the next 24 hours", e)
	}
	if sub, _ := claims["sub"].(string); !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return nil, "", fmt.Errorf("jwt: sub %q is neither mailto: nor https:", sub)
	}
	return claims, key, nil
}

func decodeJSON(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Decrypt opens an aes128gcm Web Push body (RFC 8291 §3.4, RFC 8188 §2)
// with the user agent's private key and auth secret and strips padding.
func Decrypt(body []byte, priv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, fmt.Errorf("keyid length %d, want 65", idlen)
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	ct := body[21+idlen:]
	if rs < 18 || len(ct) > int(rs) {
		return nil, fmt.Errorf("record size %d, ciphertext %d: only one record expected", rs, len(ct))
	}
	shared, err := priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), priv.PublicKey().Bytes()...), asPub.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, shared, auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	// The last record ends with 0x02 then zero padding.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:i], nil
}
