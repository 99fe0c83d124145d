package bench

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestNewCredentialFullCoordinates: every credential's COSE key carries
// 32-byte x and y (CBOR byte strings of length 32: 0x58 0x20), where
// virtualwebauthn.NewCredential gets it wrong about once in 64.
func TestNewCredentialFullCoordinates(t *testing.T) {
	for range 500 {
		c := NewCredential()
		att := hex.EncodeToString(c.Key.AttestationData())
		// -2 (x) is 0x21, -3 (y) is 0x22 in CBOR.
		if !strings.Contains(att, "215820") || !strings.Contains(att, "225820") {
			t.Fatalf("COSE key without 32-byte coordinates: %s", att)
		}
	}
}
