package mls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// RFC 9420 §17.1 cipher suites.
const (
	SuiteX25519AES128SHA256Ed25519 uint16 = 0x0001 // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	SuiteP256AES128SHA256P256      uint16 = 0x0002 // MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	SuiteX25519ChaChaSHA256Ed25519 uint16 = 0x0003 // MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	SuiteX448AES256SHA512Ed448     uint16 = 0x0004 // MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448
	SuiteP521AES256SHA512P521      uint16 = 0x0005 // MLS_256_DHKEMP521_AES256GCM_SHA512_P521
	SuiteX448ChaChaSHA512Ed448     uint16 = 0x0006 // MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448
	SuiteP384AES256SHA384P384      uint16 = 0x0007 // MLS_256_DHKEMP384_AES256GCM_SHA384_P384
	keyPackageRefLabel                    = "MLS 1.0 KeyPackage Reference"
	signLabelPrefix                       = "MLS 1.0 "
)

type sigScheme uint8

const (
	sigEd25519 sigScheme = iota + 1
	sigEd448
	sigECDSA
)

type suiteInfo struct {
	name  string
	hash  crypto.Hash
	sig   sigScheme
	curve func() elliptic.Curve // ECDSA only
}

var suites = [...]suiteInfo{
	SuiteX25519AES128SHA256Ed25519: {"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", crypto.SHA256, sigEd25519, nil},
	SuiteP256AES128SHA256P256:      {"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", crypto.SHA256, sigECDSA, elliptic.P256},
	SuiteX25519ChaChaSHA256Ed25519: {"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", crypto.SHA256, sigEd25519, nil},
	SuiteX448AES256SHA512Ed448:     {"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", crypto.SHA512, sigEd448, nil},
	SuiteP521AES256SHA512P521:      {"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", crypto.SHA512, sigECDSA, elliptic.P521},
	SuiteX448ChaChaSHA512Ed448:     {"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", crypto.SHA512, sigEd448, nil},
	SuiteP384AES256SHA384P384:      {"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", crypto.SHA384, sigECDSA, elliptic.P384},
}

func lookupSuite(id uint16) (suiteInfo, bool) {
	if int(id) >= len(suites) || suites[id].name == "" {
		return suiteInfo{}, false
	}
	return suites[id], true
}

// SupportedSuite reports whether id is one of the RFC 9420 cipher suites
// 0x0001..0x0007, for which this package can parse key packages and compute
// KeyPackageRefs. Signature verification additionally needs SignatureSupported.
func SupportedSuite(id uint16) bool {
	_, ok := lookupSuite(id)
	return ok
}

// SignatureSupported reports whether VerifySignature can check signatures for
// suite id: true for the Ed25519 and ECDSA suites, false for the Ed448
// suites (0x0004, 0x0006; Ed448 is not in the Go standard library) and for
// unknown suites.
func SignatureSupported(id uint16) bool {
	s, ok := lookupSuite(id)
	return ok && s.sig != sigEd448
}

// SuiteName returns the RFC 9420 name of suite id, or "0xNNNN" if unknown.
func SuiteName(id uint16) string {
	if s, ok := lookupSuite(id); ok {
		return s.name
	}
	return fmt.Sprintf("0x%04x", id)
}

// SuiteHash returns the hash function of cipher suite id, or an error
// wrapping ErrUnsupportedSuite.
func SuiteHash(id uint16) (crypto.Hash, error) {
	s, ok := lookupSuite(id)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnsupportedSuite, SuiteName(id))
	}
	return s.hash, nil
}

func newHash(h crypto.Hash) hash.Hash {
	// Direct constructors avoid depending on crypto.RegisterHash side effects.
	switch h {
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	default:
		return sha512.New()
	}
}

// RefHash computes RFC 9420 §5.2 RefHash(label, value) =
// Hash(RefHashInput{opaque label<V>; opaque value<V>}) with the hash of
// suite id.
func RefHash(id uint16, label string, value []byte) ([]byte, error) {
	s, ok := lookupSuite(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedSuite, SuiteName(id))
	}
	if len(label) > MaxVarint || len(value) > MaxVarint {
		return nil, fmt.Errorf("%w: RefHash input too long", ErrMalformed)
	}
	h := newHash(s.hash)
	var hdr [4]byte
	h.Write(appendVarint(hdr[:0], uint32(len(label))))
	h.Write([]byte(label))
	h.Write(appendVarint(hdr[:0], uint32(len(value))))
	h.Write(value)
	return h.Sum(nil), nil
}

// VerifyWithLabel checks an RFC 9420 §5.1.2 SignWithLabel signature: sig must
// sign SignContent{opaque label<V> = "MLS 1.0 " + label; opaque content<V>}
// under pub with the signature scheme of suite id. Ed25519 signs SignContent
// directly; ECDSA (P-256/P-384/P-521) signatures are ASN.1 DER over the
// suite's hash of SignContent, and pub is a SEC1 point: uncompressed as RFC
// 9420 implementations send it, or compressed as ts-mls 1.6.4 sends it.
func VerifyWithLabel(id uint16, pub []byte, label string, content, sig []byte) error {
	s, ok := lookupSuite(id)
	if !ok || s.sig == sigEd448 {
		return fmt.Errorf("%w: no signature verification for %s", ErrUnsupportedSuite, SuiteName(id))
	}
	full := len(signLabelPrefix) + len(label)
	msg := make([]byte, 0, 8+full+len(content))
	msg = appendVarint(msg, uint32(full))
	msg = append(msg, signLabelPrefix...)
	msg = append(msg, label...)
	if len(content) > MaxVarint {
		return fmt.Errorf("%w: signed content too long", ErrMalformed)
	}
	msg = appendOpaque(msg, content)
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrInvalidSignature, len(pub))
		}
		if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
			return fmt.Errorf("%w: %s", ErrInvalidSignature, label)
		}
	case sigECDSA:
		key, err := parseECDSAPublicKey(s.curve(), pub)
		if err != nil {
			return fmt.Errorf("%w: ECDSA public key: %v", ErrInvalidSignature, err)
		}
		h := newHash(s.hash)
		h.Write(msg)
		if !ecdsa.VerifyASN1(key, h.Sum(nil), sig) {
			return fmt.Errorf("%w: %s", ErrInvalidSignature, label)
		}
	}
	return nil
}

// parseECDSAPublicKey accepts an uncompressed (0x04) or compressed (0x02,
// 0x03) SEC1 point and checks that it lies on the curve.
func parseECDSAPublicKey(curve elliptic.Curve, pub []byte) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	if len(pub) == 1+size && (pub[0] == 2 || pub[0] == 3) {
		x, y := elliptic.UnmarshalCompressed(curve, pub)
		if x == nil {
			return nil, fmt.Errorf("invalid compressed point")
		}
		u := make([]byte, 1+2*size)
		u[0] = 4
		x.FillBytes(u[1 : 1+size])
		y.FillBytes(u[1+size:])
		pub = u
	}
	return ecdsa.ParseUncompressedPublicKey(curve, pub)
}
