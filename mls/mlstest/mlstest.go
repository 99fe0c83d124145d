// Package mlstest builds MLS bytes for tests and benchmarks: framed
// messages (messages.go: PrivateMessages, Welcomes, GroupInfos with random
// encrypted parts) and real, signed RFC 9420 key packages: cipher suite 0x0001 (X25519, AES-128-GCM, SHA-256, Ed25519)
// with a BasicCredential carrying any identity. The server never creates key
// packages; this exists so Go tests can upload packages bound to a seeded
// device without a JavaScript MLS client.
//
//	kp := mlstest.KeyPackage(mlstest.Options{Identity: "sovereign:device:" + deviceID})
//	// kp.Bytes is an MLSMessage(key_package); kp.Ref its KeyPackageRef.
//
// The encoding follows RFC 9420 §10 (KeyPackage), §7.2 (LeafNode) and §5.1.2
// (SignWithLabel); mls.ParseKeyPackage and VerifySignature accept the result
// (tested), and so does any conforming MLS client. The HPKE init and leaf
// encryption keys are fresh X25519 public keys whose private halves are
// thrown away: the packages are good for the server, not for joining a group.
package mlstest

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"time"
)

// Suite is the cipher suite of every package built here.
const Suite uint16 = 0x0001

// ExtensionLastResort is the last_resort extension type (RFC 9420 §17.3
// registry, draft-ietf-mls-extensions).
const ExtensionLastResort uint16 = 0x000a

// Options describe a key package. The zero value is valid: an empty
// identity, a lifetime of one hour ago to 30 days ahead, a fresh key.
type Options struct {
	// Identity is the BasicCredential identity, e.g.
	// "sovereign:device:<device-uuid>".
	Identity string
	// NotBefore and NotAfter bound the lifetime (whole seconds are
	// encoded). Zero values mean now-1h and now+30 days.
	NotBefore, NotAfter time.Time
	// LastResort adds the last_resort extension (0x000a, empty data) to the
	// key package and lists it in the leaf's capabilities, as ts-mls
	// clients do.
	LastResort bool
	// Signer signs the leaf node and the key package; nil generates a key.
	Signer ed25519.PrivateKey
}

// Built is an encoded key package.
type Built struct {
	// Bytes is the whole MLSMessage: version mls10, wire format
	// mls_key_package, then the KeyPackage.
	Bytes []byte
	// Ref is its KeyPackageRef (RFC 9420 §5.2, SHA-256).
	Ref []byte
	// Signer is the leaf's signature key.
	Signer ed25519.PrivateKey
}

// KeyPackage builds and signs a key package. It panics only if the system's
// random source fails.
func KeyPackage(o Options) Built {
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(30 * 24 * time.Hour)
	}
	if o.Signer == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic("mlstest: " + err.Error())
		}
		o.Signer = priv
	}

	// LeafNodeTBS for the key_package source (no group id / leaf index).
	ln := opaque(nil, x25519Public())                             // encryption_key
	ln = opaque(ln, o.Signer.Public().(ed25519.PublicKey))        // signature_key
	ln = u16(ln, 1)                                               // credential_type basic
	ln = opaque(ln, []byte(o.Identity))                           // identity
	ln = opaque(ln, u16(nil, 1))                                  // capabilities.versions: mls10
	ln = opaque(ln, u16(nil, Suite))                              // capabilities.cipher_suites
	ln = opaque(ln, capabilityExtensions(o.LastResort))           // capabilities.extensions
	ln = opaque(ln, nil)                                          // capabilities.proposals
	ln = opaque(ln, u16(nil, 1))                                  // capabilities.credentials: basic
	ln = append(ln, 1)                                            // leaf_node_source key_package
	ln = u64(ln, uint64(max(o.NotBefore.Unix(), 0)))              // lifetime.not_before
	ln = u64(ln, uint64(max(o.NotAfter.Unix(), 0)))               // lifetime.not_after
	ln = opaque(ln, nil)                                          // leaf extensions
	ln = opaque(ln, signWithLabel(o.Signer, "LeafNodeTBS", ln))   // leaf signature
	kp := u16(nil, 1)                                             // version mls10
	kp = u16(kp, Suite)                                           // cipher_suite
	kp = opaque(kp, x25519Public())                               // init_key
	kp = append(kp, ln...)                                        // leaf_node
	kp = opaque(kp, keyPackageExtensions(o.LastResort))           // extensions
	kp = opaque(kp, signWithLabel(o.Signer, "KeyPackageTBS", kp)) // signature

	msg := make([]byte, 0, 4+len(kp))
	msg = u16(msg, 1) // MLSMessage.version mls10
	msg = u16(msg, 5) // wire_format mls_key_package
	msg = append(msg, kp...)
	return Built{Bytes: msg, Ref: refHash("MLS 1.0 KeyPackage Reference", kp), Signer: o.Signer}
}

func capabilityExtensions(lastResort bool) []byte {
	if lastResort {
		return u16(nil, ExtensionLastResort)
	}
	return nil
}

func keyPackageExtensions(lastResort bool) []byte {
	if !lastResort {
		return nil
	}
	return opaque(u16(nil, ExtensionLastResort), nil) // type, empty extension_data
}

// signWithLabel is RFC 9420 §5.1.2 SignWithLabel for Ed25519.
func signWithLabel(key ed25519.PrivateKey, label string, content []byte) []byte {
	msg := opaque(nil, []byte("MLS 1.0 "+label))
	msg = opaque(msg, content)
	return ed25519.Sign(key, msg)
}

// refHash is RFC 9420 §5.2 RefHash with SHA-256.
func refHash(label string, value []byte) []byte {
	in := opaque(nil, []byte(label))
	in = opaque(in, value)
	sum := sha256.Sum256(in)
	return sum[:]
}

func x25519Public() []byte {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic("mlstest: " + err.Error())
	}
	return k.PublicKey().Bytes()
}

// opaque appends an RFC 9420 §2.1.2 variable-length vector.
func opaque(dst, b []byte) []byte {
	n := len(b)
	switch {
	case n < 1<<6:
		dst = append(dst, byte(n))
	case n < 1<<14:
		dst = append(dst, 0x40|byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

func u16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func u64(dst []byte, v uint64) []byte {
	return append(dst, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
