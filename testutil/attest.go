package testutil

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
)

// BoundLogin is a bound sign-in's begin answer: the ceremony and what its
// challenge was computed from.
type BoundLogin struct {
	Ceremony
	DeviceBinding struct {
		DeviceID string `json:"device_id"`
		Nonce    string `json:"nonce"`
	} `json:"device_binding"`
}

// NonceBytes is the binding nonce decoded.
func (b *BoundLogin) NonceBytes(t testing.TB) []byte {
	t.Helper()
	n, err := base64.RawURLEncoding.DecodeString(b.DeviceBinding.Nonce)
	if err != nil {
		t.Fatalf("nonce %q: %v", b.DeviceBinding.Nonce, err)
	}
	return n
}

// BeginBoundLogin begins a login that binds key (username "" for a
// discoverable login; deviceID "" for a new device).
func (s *Server) BeginBoundLogin(t testing.TB, username string, key []byte, deviceID string) BoundLogin {
	t.Helper()
	body := map[string]any{"device_signature_key": base64.RawURLEncoding.EncodeToString(key)}
	if username != "" {
		body["username"] = username
	}
	if deviceID != "" {
		body["device_id"] = deviceID
	}
	r := s.Do(t, http.MethodPost, "/v1/auth/login/begin", "", body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("bound login begin = %d %s", r.StatusCode, r.Body)
	}
	var b BoundLogin
	r.JSON(t, &b)
	return b
}

// WithChallenge returns request options with their challenge replaced (to
// play a client that asks the authenticator over another challenge).
func WithChallenge(t testing.TB, options json.RawMessage, challenge []byte) json.RawMessage {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatal(err)
	}
	o["challenge"] = base64.RawURLEncoding.EncodeToString(challenge)
	out, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BindDevice binds the signed-in device of token to key with the passkey
// with, through the binding endpoint, and returns the finish response.
func (s *Server) BindDevice(t testing.TB, token string, with *Passkey, key []byte) *Response {
	t.Helper()
	r := s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/begin", token,
		map[string]any{"signature_key": base64.RawURLEncoding.EncodeToString(key)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("binding begin = %d %s", r.StatusCode, r.Body)
	}
	var b BoundLogin
	r.JSON(t, &b)
	return s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/finish", token,
		map[string]any{"ceremony_id": b.CeremonyID, "credential": with.Assert(t, b.Options)})
}
