package mls

// Padding buckets of application messages (--require-padding). A
// PrivateMessage's ciphertext is its padded PrivateMessageContent plus the
// AEAD tag (16 bytes in every RFC 9420 cipher suite), so the padded content
// length is len(ciphertext) - AEADTagBytes. The SDKs pad it to a bucket:
// at least MinPaddedBytes, and a Padmé length above that (Nikitin et al.,
// "Reducing Metadata Leakage from Encrypted Files and Communication with
// PURBs", 2019): the stored size then leaks O(log log n) bits of the
// message's length n, for at most 12% overhead.

// AEADTagBytes is the AEAD tag length of every RFC 9420 cipher suite.
const AEADTagBytes = 16

// MinPaddedBytes is the smallest padding bucket: short messages all look
// alike.
const MinPaddedBytes = 256

// padme is the Padmé length of n: n rounded up so that only its top
// floor(log2(floor(log2 n)))+1 bits may be non-zero.
func padme(n int) int {
	if n < 2 {
		return n
	}
	e := bitLen(n) - 1   // floor(log2 n)
	s := bitLen(e)       // floor(log2 e) + 1
	mask := 1<<(e-s) - 1 // the low bits that must be zero
	return (n + mask) &^ mask
}

func bitLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

// PaddedLength is the bucket a padded content of n bytes is padded to.
func PaddedLength(n int) int { return padme(max(n, MinPaddedBytes)) }

// IsPaddedLength reports whether n is a bucket.
func IsPaddedLength(n int) bool { return n >= MinPaddedBytes && padme(n) == n }

// IsPadded reports whether a parsed PrivateMessage's ciphertext holds a
// content padded to a bucket.
func (m *Message) IsPadded() bool {
	return m.WireFormat == WireFormatPrivateMessage && IsPaddedLength(len(m.Ciphertext)-AEADTagBytes)
}
