package mls

import (
	"fmt"
	"time"
)

// CredentialType is an RFC 9420 §5.3 credential type.
type CredentialType uint16

// Credential types this package can parse.
const (
	CredentialBasic CredentialType = 1 // BasicCredential: opaque identity<V>
	CredentialX509  CredentialType = 2 // X.509: Certificate certificates<V>
)

// String returns "basic", "x509" or "credential(N)".
func (t CredentialType) String() string {
	switch t {
	case CredentialBasic:
		return "basic"
	case CredentialX509:
		return "x509"
	}
	return fmt.Sprintf("credential(%d)", uint16(t))
}

// LeafNodeSource is an RFC 9420 §7.2 leaf node source.
type LeafNodeSource uint8

// Leaf node sources.
const (
	SourceKeyPackage LeafNodeSource = 1
	SourceUpdate     LeafNodeSource = 2
	SourceCommit     LeafNodeSource = 3
)

// String returns "key_package", "update", "commit" or "leaf_node_source(N)".
func (s LeafNodeSource) String() string {
	switch s {
	case SourceKeyPackage:
		return "key_package"
	case SourceUpdate:
		return "update"
	case SourceCommit:
		return "commit"
	}
	return fmt.Sprintf("leaf_node_source(%d)", uint8(s))
}

// Extension is an RFC 9420 §13 extension; Data aliases the input.
type Extension struct {
	Type uint16 // extension type, e.g. 0x000a last_resort
	Data []byte // opaque extension_data
}

// Credential is an RFC 9420 §5.3 credential. Identity is set for basic
// credentials, Certificates (DER, unparsed) for X.509 ones; both alias the
// input.
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic: identity bytes
	Certificates [][]byte // x509: DER certificates, leaf first
}

// Capabilities is an RFC 9420 §7.2 leaf node Capabilities structure.
type Capabilities struct {
	Versions     []uint16 // protocol versions
	CipherSuites []uint16 // cipher suites
	Extensions   []uint16 // extension types
	Proposals    []uint16 // proposal types
	Credentials  []uint16 // credential types
}

// LeafNode is an RFC 9420 §7.2 leaf node. NotBefore/NotAfter are set only for
// the key_package source, ParentHash only for the commit source.
type LeafNode struct {
	EncryptionKey []byte         // HPKE public key
	SignatureKey  []byte         // Ed25519 key or SEC1 ECDSA point
	Credential    Credential     // basic or X.509
	Capabilities  Capabilities   // advertised capabilities
	Source        LeafNodeSource // key_package, update or commit
	NotBefore     uint64         // key_package source: seconds since the Unix epoch
	NotAfter      uint64         // key_package source: seconds since the Unix epoch
	ParentHash    []byte         // commit source only
	Extensions    []Extension    // leaf node extensions
	Signature     []byte         // SignWithLabel(., "LeafNodeTBS", LeafNodeTBS)

	// tbs is the encoded leaf node without its signature: the LeafNodeTBS for
	// the key_package source.
	tbs []byte
}

// KeyPackage is a parsed RFC 9420 §10 KeyPackage. All byte slices alias the
// input given to ParseKeyPackage.
type KeyPackage struct {
	Version     uint16      // always 1 (mls10)
	CipherSuite uint16      // 0x0001..0x0007
	InitKey     []byte      // HPKE init key
	LeafNode    LeafNode    // the member's leaf, source key_package
	Extensions  []Extension // key package extensions
	Signature   []byte      // SignWithLabel(., "KeyPackageTBS", KeyPackageTBS)

	raw []byte // the encoded KeyPackage (MLSMessage minus its 4-byte header)
	tbs []byte // raw minus the trailing signature: the KeyPackageTBS
	ref []byte
}

// ParseKeyPackage parses a complete MLSMessage carrying a KeyPackage
// (wire format mls_key_package). It checks the framing of every field, that
// the version is mls10, the cipher suite is supported (SupportedSuite), the
// leaf node source is key_package, and that no bytes trail. It computes the
// KeyPackageRef but does not verify signatures: call VerifySignature.
func ParseKeyPackage(msg []byte) (*KeyPackage, error) {
	wf, body, err := parseHeader(msg)
	if err != nil {
		return nil, err
	}
	if wf != WireFormatKeyPackage {
		return nil, fmt.Errorf("%w: got %v, want %v", ErrWrongWireFormat, wf, WireFormatKeyPackage)
	}
	c := cursor{body}
	kp, err := parseKeyPackage(&c)
	if err == nil {
		err = c.done()
	}
	if err != nil {
		return nil, fmt.Errorf("mls: key package: %w", err)
	}
	return kp, nil
}

// parseKeyPackage reads a KeyPackage struct (no MLSMessage header) and
// computes its ref.
func parseKeyPackage(c *cursor) (*KeyPackage, error) {
	start := c.b
	kp := &KeyPackage{}
	var err error
	if kp.Version, err = c.u16(); err != nil {
		return nil, field("version", err)
	}
	if kp.Version != versionMLS10 {
		return nil, fmt.Errorf("version: %w: %d", ErrUnsupportedVersion, kp.Version)
	}
	if kp.CipherSuite, err = c.u16(); err != nil {
		return nil, field("cipher_suite", err)
	}
	if !SupportedSuite(kp.CipherSuite) {
		return nil, fmt.Errorf("cipher_suite: %w: %s", ErrUnsupportedSuite, SuiteName(kp.CipherSuite))
	}
	if kp.InitKey, err = c.opaque(); err != nil {
		return nil, field("init_key", err)
	}
	if err = parseLeafNode(c, &kp.LeafNode); err != nil {
		return nil, field("leaf_node", err)
	}
	if kp.LeafNode.Source != SourceKeyPackage {
		return nil, fmt.Errorf("leaf_node: %w: source %v in a key package", ErrMalformed, kp.LeafNode.Source)
	}
	if kp.Extensions, err = parseExtensions(c); err != nil {
		return nil, field("extensions", err)
	}
	kp.tbs = start[: len(start)-len(c.b) : len(start)-len(c.b)]
	if kp.Signature, err = c.opaque(); err != nil {
		return nil, field("signature", err)
	}
	kp.raw = start[: len(start)-len(c.b) : len(start)-len(c.b)]
	if kp.ref, err = RefHash(kp.CipherSuite, keyPackageRefLabel, kp.raw); err != nil {
		return nil, field("ref", err)
	}
	return kp, nil
}

// parseLeafNode reads a LeafNode of any source.
func parseLeafNode(c *cursor, ln *LeafNode) error {
	start := c.b
	var err error
	if ln.EncryptionKey, err = c.opaque(); err != nil {
		return field("encryption_key", err)
	}
	if ln.SignatureKey, err = c.opaque(); err != nil {
		return field("signature_key", err)
	}
	if err = parseCredential(c, &ln.Credential); err != nil {
		return field("credential", err)
	}
	if err = parseCapabilities(c, &ln.Capabilities); err != nil {
		return field("capabilities", err)
	}
	src, err := c.u8()
	if err != nil {
		return field("leaf_node_source", err)
	}
	ln.Source = LeafNodeSource(src)
	switch ln.Source {
	case SourceKeyPackage:
		if ln.NotBefore, err = c.u64(); err != nil {
			return field("lifetime.not_before", err)
		}
		if ln.NotAfter, err = c.u64(); err != nil {
			return field("lifetime.not_after", err)
		}
	case SourceUpdate:
	case SourceCommit:
		if ln.ParentHash, err = c.opaque(); err != nil {
			return field("parent_hash", err)
		}
	default:
		return fmt.Errorf("leaf_node_source: %w: %d", ErrMalformed, src)
	}
	if ln.Extensions, err = parseExtensions(c); err != nil {
		return field("extensions", err)
	}
	ln.tbs = start[: len(start)-len(c.b) : len(start)-len(c.b)]
	if ln.Signature, err = c.opaque(); err != nil {
		return field("signature", err)
	}
	return nil
}

func parseCredential(c *cursor, cr *Credential) error {
	t, err := c.u16()
	if err != nil {
		return field("credential_type", err)
	}
	cr.Type = CredentialType(t)
	switch cr.Type {
	case CredentialBasic:
		if cr.Identity, err = c.opaque(); err != nil {
			return field("identity", err)
		}
	case CredentialX509:
		v, err := c.vector()
		if err != nil {
			return field("certificates", err)
		}
		for !v.empty() {
			cert, err := v.opaque()
			if err != nil {
				return field("certificates", err)
			}
			cr.Certificates = append(cr.Certificates, cert)
		}
	default:
		// Custom credential types have no length prefix: they cannot be skipped.
		return fmt.Errorf("credential_type: %w: %v", ErrUnsupported, cr.Type)
	}
	return nil
}

func parseCapabilities(c *cursor, cp *Capabilities) error {
	var err error
	if cp.Versions, err = c.u16s(); err != nil {
		return field("versions", err)
	}
	if cp.CipherSuites, err = c.u16s(); err != nil {
		return field("cipher_suites", err)
	}
	if cp.Extensions, err = c.u16s(); err != nil {
		return field("extensions", err)
	}
	if cp.Proposals, err = c.u16s(); err != nil {
		return field("proposals", err)
	}
	if cp.Credentials, err = c.u16s(); err != nil {
		return field("credentials", err)
	}
	return nil
}

// parseExtensions reads Extension extensions<V> and rejects duplicate types
// (RFC 9420 §13: an extension type must not appear twice in a list).
func parseExtensions(c *cursor) ([]Extension, error) {
	v, err := c.vector()
	if err != nil {
		return nil, err
	}
	var out []Extension
	var seen map[uint16]struct{} // only for long lists, to stay linear
	for !v.empty() {
		t, err := v.u16()
		if err != nil {
			return nil, field("extension_type", err)
		}
		d, err := v.opaque()
		if err != nil {
			return nil, field("extension_data", err)
		}
		dup := false
		if seen == nil {
			for _, e := range out {
				dup = dup || e.Type == t
			}
			if len(out) == 16 {
				seen = make(map[uint16]struct{}, 32)
				for _, e := range out {
					seen[e.Type] = struct{}{}
				}
			}
		}
		if seen != nil {
			_, dup = seen[t]
			seen[t] = struct{}{}
		}
		if dup {
			return nil, fmt.Errorf("%w: duplicate extension type 0x%04x", ErrMalformed, t)
		}
		out = append(out, Extension{Type: t, Data: d})
	}
	return out, nil
}

// Ref returns the KeyPackageRef: RefHash("MLS 1.0 KeyPackage Reference",
// KeyPackage) with the suite's hash, computed at parse time.
func (kp *KeyPackage) Ref() []byte { return kp.ref }

// Raw returns the encoded KeyPackage struct (the MLSMessage without its
// 4-byte version/wire-format header). It aliases the input.
func (kp *KeyPackage) Raw() []byte { return kp.raw }

// Lifetime returns the leaf node's not_before and not_after, in seconds since
// the Unix epoch (uint64: clients commonly use 2^63-1 for "forever", which
// does not fit a time.Time).
func (kp *KeyPackage) Lifetime() (notBefore, notAfter uint64) {
	return kp.LeafNode.NotBefore, kp.LeafNode.NotAfter
}

// ValidAt reports whether t lies within the key package's lifetime
// (inclusive bounds).
func (kp *KeyPackage) ValidAt(t time.Time) bool {
	s := t.Unix()
	if s < 0 {
		return false
	}
	return kp.LeafNode.NotBefore <= uint64(s) && uint64(s) <= kp.LeafNode.NotAfter
}

// CredentialType returns the type of the leaf node's credential.
func (kp *KeyPackage) CredentialType() CredentialType { return kp.LeafNode.Credential.Type }

// Identity returns the identity of a basic credential, or nil for other
// credential types. It aliases the input.
func (kp *KeyPackage) Identity() []byte { return kp.LeafNode.Credential.Identity }

// Certificates returns the DER certificate chain of an X.509 credential, or
// nil for other credential types. The certificates are not parsed.
func (kp *KeyPackage) Certificates() [][]byte { return kp.LeafNode.Credential.Certificates }

// SignatureKey returns the leaf node's signature public key.
func (kp *KeyPackage) SignatureKey() []byte { return kp.LeafNode.SignatureKey }

// HasExtension reports whether the key package (not its leaf node) carries
// an extension of type t, e.g. 0x000a last_resort.
func (kp *KeyPackage) HasExtension(t uint16) bool {
	for _, e := range kp.Extensions {
		if e.Type == t {
			return true
		}
	}
	return false
}

// VerifySignature verifies the leaf node signature (SignWithLabel
// "LeafNodeTBS" over the leaf node fields, key_package source) and the key
// package signature (SignWithLabel "KeyPackageTBS" over the KeyPackage minus
// its signature), both under the leaf node's signature key. It returns an
// error wrapping ErrUnsupportedSuite for the Ed448 suites and
// ErrInvalidSignature when a signature does not verify.
func (kp *KeyPackage) VerifySignature() error {
	ln := &kp.LeafNode
	if err := VerifyWithLabel(kp.CipherSuite, ln.SignatureKey, "LeafNodeTBS", ln.tbs, ln.Signature); err != nil {
		return fmt.Errorf("mls: key package: leaf node: %w", err)
	}
	if err := VerifyWithLabel(kp.CipherSuite, ln.SignatureKey, "KeyPackageTBS", kp.tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: key package: %w", err)
	}
	return nil
}
