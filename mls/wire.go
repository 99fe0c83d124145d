// Package mls parses the clear parts of untrusted MLS (RFC 9420) messages.
//
// The Sovereign server is an MLS Delivery Service: it never decrypts, but it
// must route messages by group id and epoch, address Welcomes to key packages
// and store key packages. Every parser here is strict (RFC 9420 §2.1.2
// minimal variable-length integers, optional presence bytes of 0 or 1, no
// trailing bytes, known enum values), never panics, and checks each length
// prefix against the bytes that remain before allocating anything.
//
// Byte slices in parsed results (group ids, ciphertexts, keys, ...) alias the
// input buffer: they are not copied. Callers that keep a result beyond the
// lifetime of the input buffer, or that modify the buffer, must copy them.
// The aliased slices have their capacity clipped so that appending to them
// never overwrites the input.
package mls

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (test with errors.Is) and adds context saying which field failed.
var (
	// ErrTruncated means the input ended before a field or a length-prefixed
	// vector was complete.
	ErrTruncated = errors.New("mls: truncated input")
	// ErrMalformed means a field has an invalid encoding: a variable-length
	// integer with the reserved 11 prefix or a non-minimal encoding, an
	// optional presence byte other than 0 or 1, an unknown enum value, a
	// vector whose length is not a multiple of its element size, ...
	ErrMalformed = errors.New("mls: malformed encoding")
	// ErrTrailingData means bytes remain after a complete structure.
	ErrTrailingData = errors.New("mls: trailing data")
	// ErrUnsupportedVersion means the protocol version is not mls10 (1).
	ErrUnsupportedVersion = errors.New("mls: unsupported protocol version")
	// ErrUnknownWireFormat means the MLSMessage wire format is not 1..5.
	ErrUnknownWireFormat = errors.New("mls: unknown wire format")
	// ErrWrongWireFormat means a typed parser (ParseKeyPackage, ...) was
	// given a well-formed MLSMessage of another wire format.
	ErrWrongWireFormat = errors.New("mls: unexpected wire format")
	// ErrUnsupported means a structure uses a type this package cannot skip
	// over (an unknown proposal or credential type has no length prefix, so
	// the rest of the message cannot be framed).
	ErrUnsupported = errors.New("mls: unsupported type")
	// ErrUnsupportedSuite means the cipher suite is unknown or, for
	// signature verification, its signature scheme (Ed448) is not available.
	ErrUnsupportedSuite = errors.New("mls: unsupported cipher suite")
	// ErrInvalidSignature means a signature did not verify.
	ErrInvalidSignature = errors.New("mls: invalid signature")
)

// MaxVarint is the largest value a RFC 9420 variable-length integer can
// encode (2^30 - 1).
const MaxVarint = 1<<30 - 1

// ReadVarint decodes the RFC 9420 §2.1.2 variable-length integer at the start
// of b and returns its value and encoded size. It rejects the reserved 11
// prefix and encodings that are not the shortest possible.
func ReadVarint(b []byte) (v uint32, n int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: varint: empty", ErrTruncated)
	}
	switch b[0] >> 6 {
	case 0:
		return uint32(b[0]), 1, nil
	case 1:
		if len(b) < 2 {
			return 0, 0, fmt.Errorf("%w: varint: need 2 bytes, have %d", ErrTruncated, len(b))
		}
		v = uint32(b[0]&0x3f)<<8 | uint32(b[1])
		if v < 1<<6 {
			return 0, 0, fmt.Errorf("%w: non-minimal 2-byte varint %d", ErrMalformed, v)
		}
		return v, 2, nil
	case 2:
		if len(b) < 4 {
			return 0, 0, fmt.Errorf("%w: varint: need 4 bytes, have %d", ErrTruncated, len(b))
		}
		v = uint32(b[0]&0x3f)<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if v < 1<<14 {
			return 0, 0, fmt.Errorf("%w: non-minimal 4-byte varint %d", ErrMalformed, v)
		}
		return v, 4, nil
	default:
		return 0, 0, fmt.Errorf("%w: varint with reserved prefix 0b11 (0x%02x)", ErrMalformed, b[0])
	}
}

// appendVarint appends the minimal encoding of v (which must be <= MaxVarint).
func appendVarint(dst []byte, v uint32) []byte {
	switch {
	case v < 1<<6:
		return append(dst, byte(v))
	case v < 1<<14:
		return append(dst, 0x40|byte(v>>8), byte(v))
	default:
		return append(dst, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// appendOpaque appends b as opaque<V>.
func appendOpaque(dst, b []byte) []byte {
	return append(appendVarint(dst, uint32(len(b))), b...)
}

// cursor reads TLS-presentation-language fields from a byte slice. It never
// panics: every read checks the remaining length first.
type cursor struct {
	b []byte
}

// empty reports whether all bytes were consumed.
func (c *cursor) empty() bool { return len(c.b) == 0 }

// done returns ErrTrailingData if bytes remain.
func (c *cursor) done() error {
	if len(c.b) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailingData, len(c.b))
	}
	return nil
}

// take returns the next n bytes (aliasing the input, capacity clipped).
func (c *cursor) take(n int) ([]byte, error) {
	if n < 0 || n > len(c.b) {
		return nil, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(c.b))
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v, nil
}

func (c *cursor) u8() (uint8, error) {
	if len(c.b) < 1 {
		return 0, fmt.Errorf("%w: need 1 byte, have 0", ErrTruncated)
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v, nil
}

func (c *cursor) u16() (uint16, error) {
	if len(c.b) < 2 {
		return 0, fmt.Errorf("%w: need 2 bytes, have %d", ErrTruncated, len(c.b))
	}
	v := uint16(c.b[0])<<8 | uint16(c.b[1])
	c.b = c.b[2:]
	return v, nil
}

func (c *cursor) u32() (uint32, error) {
	if len(c.b) < 4 {
		return 0, fmt.Errorf("%w: need 4 bytes, have %d", ErrTruncated, len(c.b))
	}
	v := uint32(c.b[0])<<24 | uint32(c.b[1])<<16 | uint32(c.b[2])<<8 | uint32(c.b[3])
	c.b = c.b[4:]
	return v, nil
}

func (c *cursor) u64() (uint64, error) {
	if len(c.b) < 8 {
		return 0, fmt.Errorf("%w: need 8 bytes, have %d", ErrTruncated, len(c.b))
	}
	var v uint64
	for _, x := range c.b[:8] {
		v = v<<8 | uint64(x)
	}
	c.b = c.b[8:]
	return v, nil
}

// opaque reads opaque<V>: a varint length then that many bytes. The length
// is checked against the remaining input before anything else happens.
func (c *cursor) opaque() ([]byte, error) {
	n, k, err := ReadVarint(c.b)
	if err != nil {
		return nil, err
	}
	if int(n) > len(c.b)-k {
		return nil, fmt.Errorf("%w: length prefix %d exceeds the %d bytes left", ErrTruncated, n, len(c.b)-k)
	}
	c.b = c.b[k:]
	return c.take(int(n))
}

// vector reads a T<V> vector and returns a cursor over its contents.
func (c *cursor) vector() (cursor, error) {
	b, err := c.opaque()
	return cursor{b}, err
}

// optional reads an optional<T> presence byte, which must be 0 or 1.
func (c *cursor) optional() (bool, error) {
	v, err := c.u8()
	if err != nil {
		return false, err
	}
	switch v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: optional presence byte %d", ErrMalformed, v)
}

// u16s reads a uint16<V> vector.
func (c *cursor) u16s() ([]uint16, error) {
	v, err := c.vector()
	if err != nil {
		return nil, err
	}
	if len(v.b)%2 != 0 {
		return nil, fmt.Errorf("%w: uint16 vector of odd length %d", ErrMalformed, len(v.b))
	}
	out := make([]uint16, 0, len(v.b)/2)
	for !v.empty() {
		x, _ := v.u16()
		out = append(out, x)
	}
	return out, nil
}

// field wraps err with the name of the field being read, or returns nil.
func field(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}
