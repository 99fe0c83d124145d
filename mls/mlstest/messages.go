// This file frames syntactically valid MLS messages for tests and
// benchmarks of the Delivery Service: PrivateMessages with chosen group id,
// epoch and content type, Welcomes addressing chosen KeyPackageRefs and
// GroupInfos for a chosen group and epoch. Their encrypted parts are random
// bytes: the server never decrypts, so only the framing matters. Every
// builder's output parses with the mls package (tested).

package mlstest

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/sovereign-im/sovereign/mls"
)

const versionMLS10 = 1

// AppendVarint appends the minimal RFC 9420 §2.1.2 encoding of v (v < 2^30).
func AppendVarint(dst []byte, v int) []byte {
	switch {
	case v < 1<<6:
		return append(dst, byte(v))
	case v < 1<<14:
		return append(dst, 0x40|byte(v>>8), byte(v))
	default:
		return append(dst, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// AppendOpaque appends b as opaque<V>.
func AppendOpaque(dst, b []byte) []byte { return append(AppendVarint(dst, len(b)), b...) }

func header(wf mls.WireFormat) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, versionMLS10), uint16(wf))
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// PrivateMessage frames an MLSMessage(PrivateMessage) for groupID at epoch
// with content type ct, authenticated data ad and a random ciphertext of
// ciphertextLen bytes (plus 16 random bytes of encrypted sender data).
func PrivateMessage(groupID []byte, epoch uint64, ct mls.ContentType, ad []byte, ciphertextLen int) []byte {
	b := header(mls.WireFormatPrivateMessage)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(ct))
	b = AppendOpaque(b, ad)
	b = AppendOpaque(b, random(16))
	b = AppendOpaque(b, random(ciphertextLen))
	return b
}

// PrivateMessageSize frames a PrivateMessage whose whole encoding is exactly
// total bytes (total must leave room for the header fields; about 40 bytes
// plus the group id).
func PrivateMessageSize(groupID []byte, epoch uint64, ct mls.ContentType, total int) []byte {
	// Fixed part: header 4, group id, epoch 8, content type 1, ad 1 (empty),
	// sender data 1+16, ciphertext length prefix (1, 2 or 4 bytes).
	fixed := 4 + len(AppendOpaque(nil, groupID)) + 8 + 1 + 1 + 17
	for _, prefix := range []int{1, 2, 4} {
		n := total - fixed - prefix
		if n >= 0 && len(AppendVarint(nil, n)) == prefix {
			return PrivateMessage(groupID, epoch, ct, nil, n)
		}
	}
	panic("mlstest: no PrivateMessage encoding of that size")
}

// Welcome frames an MLSMessage(Welcome) for cipher suite 1 with one
// EncryptedGroupSecrets entry per KeyPackageRef (random HPKE ciphertexts)
// and a random encrypted GroupInfo.
func Welcome(refs ...[]byte) []byte {
	b := header(mls.WireFormatWelcome)
	b = binary.BigEndian.AppendUint16(b, 1)
	var secrets []byte
	for _, ref := range refs {
		secrets = AppendOpaque(secrets, ref)
		secrets = AppendOpaque(secrets, random(32)) // kem_output
		secrets = AppendOpaque(secrets, random(64)) // ciphertext
	}
	b = AppendOpaque(b, secrets)
	b = AppendOpaque(b, random(128)) // encrypted_group_info
	return b
}

// GroupInfo frames an MLSMessage(GroupInfo) of cipher suite 1 for groupID at
// epoch, with no extensions, random hashes and a random signature.
func GroupInfo(groupID []byte, epoch uint64) []byte {
	b := header(mls.WireFormatGroupInfo)
	b = binary.BigEndian.AppendUint16(b, versionMLS10)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = AppendOpaque(b, random(32)) // tree_hash
	b = AppendOpaque(b, random(32)) // confirmed_transcript_hash
	b = AppendOpaque(b, nil)        // group context extensions
	b = AppendOpaque(b, nil)        // extensions
	b = AppendOpaque(b, random(32)) // confirmation_tag
	b = binary.BigEndian.AppendUint32(b, 0)
	b = AppendOpaque(b, random(64)) // signature
	return b
}

// Ref returns a random 32-byte KeyPackageRef.
func Ref() []byte { return random(32) }
