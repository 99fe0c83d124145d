package handlers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

// BenchmarkLoginBinding compares a whole sign-in over HTTP (begin, the
// virtual authenticator's signature, finish) of an existing device with and
// without binding its signature key (docs/verification.md, "Devices
// approved by passkey").
func BenchmarkLoginBinding(b *testing.B) {
	for _, bound := range []bool{false, true} {
		name := "unbound"
		if bound {
			name = "bound"
		}
		b.Run(name, func(b *testing.B) {
			s := testutil.NewServer(b)
			acc, pk := s.RegisterMember(b, "alice")
			key := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				begin := map[string]any{"username": "alice"}
				if bound {
					begin["device_signature_key"], begin["device_id"] = key, acc.DeviceID
				}
				var c testutil.Ceremony
				_ = json.Unmarshal(post(b, s.URL+"/v1/auth/login/begin", "", begin), &c)
				post(b, s.URL+"/v1/auth/login/finish", "", map[string]any{
					"ceremony_id": c.CeremonyID, "credential": pk.Assert(b, c.Options), "device_id": acc.DeviceID})
			}
		})
	}
}
