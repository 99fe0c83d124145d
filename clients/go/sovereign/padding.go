package sovereign

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Padding buckets, as the server's --require-padding checks them: the
// padded content of an application message (its PrivateMessage's
// ciphertext less the 16-byte AEAD tag) is at least MinPaddedBytes and a
// Padmé length, so a stored size leaks O(log log n) bits of the message's
// length n, for at most 12% overhead. This SDK does not encrypt: the MLS
// library that makes the PrivateMessage pads its content by
// PaddingFor(contentLen) bytes; Send checks the result by default.

// MinPaddedBytes is the smallest padding bucket.
const MinPaddedBytes = 256

// AEADTagBytes is the AEAD tag length of every RFC 9420 cipher suite.
const AEADTagBytes = 16

// ErrUnpadded is returned by Send, before anything is sent, for an
// application message whose padded content is not a padding bucket (see
// WithUnpaddedMessages to send such messages anyway).
var ErrUnpadded = errors.New("sovereign: the application message is not padded to a padding bucket")

func padme(n int) int {
	if n < 2 {
		return n
	}
	e := bitLen(n) - 1
	s := bitLen(e)
	mask := 1<<(e-s) - 1
	return (n + mask) &^ mask
}

func bitLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

// PaddedLength is the bucket a PrivateMessageContent of n bytes is padded
// to.
func PaddedLength(n int) int { return padme(max(n, MinPaddedBytes)) }

// IsPaddedLength reports whether n bytes of padded content is a bucket.
func IsPaddedLength(n int) bool { return n >= MinPaddedBytes && padme(n) == n }

// PaddingFor is the number of zero bytes to pad a PrivateMessageContent of
// contentLen bytes (application data and signature, encoded) with.
func PaddingFor(contentLen int) int { return PaddedLength(contentLen) - contentLen }

// CheckPadded returns ErrUnpadded when message is an MLSMessage
// (PrivateMessage) of content type application whose padded content is not
// a bucket, and nil for a padded one and for any other message (proposals,
// PublicMessages, bytes it cannot parse: the server judges those).
func CheckPadded(message []byte) error {
	b := message
	if len(b) < 4 || binary.BigEndian.Uint16(b[2:4]) != 2 { // wire_format mls_private_message
		return nil
	}
	b = b[4:]
	var ok bool
	if b, ok = skipOpaque(b); !ok || len(b) < 9 { // group_id
		return nil
	}
	contentType := b[8]
	b = b[9:] // epoch, content_type
	if contentType != 1 {
		return nil
	}
	for range 2 { // authenticated_data, encrypted_sender_data
		if b, ok = skipOpaque(b); !ok {
			return nil
		}
	}
	n, rest, ok := readVarint(b)
	if !ok || uint64(len(rest)) < n {
		return nil
	}
	if !IsPaddedLength(int(n) - AEADTagBytes) {
		return fmt.Errorf("%w: %d bytes of content; %d would be", ErrUnpadded, int(n)-AEADTagBytes, PaddedLength(int(n)-AEADTagBytes))
	}
	return nil
}

// readVarint reads an RFC 9420 §2.1.2 variable-length integer.
func readVarint(b []byte) (uint64, []byte, bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	size := 1 << (b[0] >> 6)
	if size == 8 || len(b) < size {
		return 0, nil, false
	}
	v := uint64(b[0] & 0x3f)
	for _, c := range b[1:size] {
		v = v<<8 | uint64(c)
	}
	return v, b[size:], true
}

func skipOpaque(b []byte) ([]byte, bool) {
	n, rest, ok := readVarint(b)
	if !ok || uint64(len(rest)) < n {
		return nil, false
	}
	return rest[n:], true
}
