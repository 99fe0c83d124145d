package models

import (
	"encoding/hex"
	"testing"
)

// The fixed vectors of docs/verification.md ("Devices approved by
// passkey"): the SDK's helpers test against the same bytes.
func TestBindingChallengeVectors(t *testing.T) {
	nonce := make([]byte, 32)
	for i := range nonce {
		nonce[i] = byte(i)
	}
	key := make([]byte, 32)
	for i := range key {
		key[i] = 0xa0 + byte(i%16)
	}
	const device = "0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f"
	got := hex.EncodeToString(DeviceBindingChallenge(nonce, key, device))
	if got != deviceVector {
		t.Errorf("device binding challenge = %s, want %s", got, deviceVector)
	}
	// Each input changes the challenge.
	for name, c := range map[string][]byte{
		"key":    DeviceBindingChallenge(nonce, append([]byte{}, key[:31]...), device),
		"device": DeviceBindingChallenge(nonce, key, "0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e80"),
		"nonce":  DeviceBindingChallenge(append([]byte{1}, nonce[1:]...), key, device),
	} {
		if hex.EncodeToString(c) == deviceVector {
			t.Errorf("a changed %s gives the same challenge", name)
		}
	}
	cred := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cose := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01}
	got = hex.EncodeToString(PasskeyApprovalChallenge(nonce, cred, cose))
	if got != approvalVector {
		t.Errorf("passkey approval challenge = %s, want %s", got, approvalVector)
	}
	// The length prefixes keep a byte moved across the field boundary from
	// giving the same challenge.
	if hex.EncodeToString(PasskeyApprovalChallenge(nonce, cred[:15], append([]byte{16}, cose...))) == approvalVector {
		t.Error("moving a byte between the fields gives the same challenge")
	}
}

const (
	deviceVector   = "3e2ebd06b0e89009c56f854e292bd597ed75ed73f128750d11f3bd73155b9f7a"
	approvalVector = "8eba6bd5f2450fc0d552897421bf9c0de32804c907bdbe5ff841e1aded8e7a3e"
)
