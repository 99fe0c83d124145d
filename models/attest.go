package models

import (
	"crypto/sha256"
	"encoding/binary"
)

// Passkey-attested devices (issue #18, item 1; docs/verification.md,
// "Devices approved by passkey"). A device's MLS signature key is bound to
// a WebAuthn assertion whose challenge commits to the key and the device
// id, and a passkey added to an account is approved by an assertion of an
// existing passkey whose challenge commits to the new credential. The
// server stores those assertions exactly as the client sent them; clients
// verify them.

// Challenge labels: each challenge is SHA-256 over a label, a zero byte and
// length-prefixed fields, so it can be mistaken for no other challenge.
const (
	DeviceBindingLabel   = "sovereign device binding v1"
	PasskeyApprovalLabel = "sovereign passkey approval v1"
)

// BindingNonceLen is the length of the server's nonce in a binding or an
// approval challenge.
const BindingNonceLen = 32

// SignatureKeyMaxLen bounds a device signature key (Ed25519 keys are 32
// bytes; the SDK's cipher suite decides).
const SignatureKeyMaxLen = 512

// Assertion is a WebAuthn assertion kept as the client sent it, with the
// server nonce its challenge was computed from. As a device binding,
// CredentialID is the passkey that signed; as a passkey approval, it is
// the approving passkey (by_credential_id).
type Assertion struct {
	CredentialID      []byte
	Nonce             []byte
	AuthenticatorData []byte
	ClientDataJSON    []byte
	Signature         []byte
}

// Size is the number of bytes the assertion stores.
func (a *Assertion) Size() int {
	if a == nil {
		return 0
	}
	return len(a.CredentialID) + len(a.Nonce) + len(a.AuthenticatorData) + len(a.ClientDataJSON) + len(a.Signature)
}

// DeviceBindingChallenge is the WebAuthn challenge that binds a device's
// signature key to a passkey assertion:
//
//	SHA-256("sovereign device binding v1" ‖ 0x00 ‖ nonce ‖ u16(len key) ‖ key ‖ u16(len id) ‖ id)
//
// with deviceID the lower-case UUID string as UTF-8 and lengths big-endian.
func DeviceBindingChallenge(nonce, signatureKey []byte, deviceID string) []byte {
	h := sha256.New()
	h.Write([]byte(DeviceBindingLabel))
	h.Write([]byte{0})
	h.Write(nonce)
	writeU16(h, signatureKey)
	writeU16(h, []byte(deviceID))
	return h.Sum(nil)
}

// PasskeyApprovalChallenge is the WebAuthn challenge with which an existing
// passkey approves a new one:
//
//	SHA-256("sovereign passkey approval v1" ‖ 0x00 ‖ nonce ‖ u16(len id) ‖ credential id ‖ u16(len key) ‖ COSE public key)
func PasskeyApprovalChallenge(nonce, credentialID, publicKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte(PasskeyApprovalLabel))
	h.Write([]byte{0})
	h.Write(nonce)
	writeU16(h, credentialID)
	writeU16(h, publicKey)
	return h.Sum(nil)
}

func writeU16(h interface{ Write([]byte) (int, error) }, b []byte) {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(b)))
	_, _ = h.Write(l[:])
	_, _ = h.Write(b)
}
