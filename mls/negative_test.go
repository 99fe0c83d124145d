package mls

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"runtime"
	"testing"
)

func u16b(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func u64b(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (56 - 8*i))
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func op(b []byte) []byte { return appendOpaque(nil, b) }

// kpOpts describes a key package built and signed (Ed25519, suite 1) by
// buildKeyPackage.
type kpOpts struct {
	suite    uint16
	credType uint16
	cred     []byte // encoded credential body after credential_type
	caps     []byte // encoded capabilities; default: five empty vectors
	source   byte
	leafExt  []byte // encoded extensions<V>
	kpExt    []byte // encoded extensions<V>
}

var testSigner = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func buildKeyPackage(o kpOpts) []byte {
	if o.suite == 0 {
		o.suite = SuiteX25519AES128SHA256Ed25519
	}
	if o.credType == 0 {
		o.credType = uint16(CredentialBasic)
		if o.cred == nil {
			o.cred = op([]byte("sovereign:device:test"))
		}
	}
	if o.caps == nil {
		o.caps = []byte{0, 0, 0, 0, 0}
	}
	if o.source == 0 {
		o.source = byte(SourceKeyPackage)
	}
	if o.leafExt == nil {
		o.leafExt = []byte{0}
	}
	if o.kpExt == nil {
		o.kpExt = []byte{0}
	}
	pub := testSigner.Public().(ed25519.PublicKey)
	leaf := cat(op(bytes.Repeat([]byte{1}, 32)), op(pub), u16b(o.credType), o.cred, o.caps, []byte{o.source})
	switch LeafNodeSource(o.source) {
	case SourceKeyPackage:
		leaf = cat(leaf, u64b(100), u64b(200))
	case SourceCommit:
		leaf = cat(leaf, op([]byte("parent")))
	}
	leaf = cat(leaf, o.leafExt)
	leaf = cat(leaf, op(signWithLabel("LeafNodeTBS", leaf)))
	tbs := cat(u16b(1), u16b(o.suite), op(bytes.Repeat([]byte{2}, 32)), leaf, o.kpExt)
	kp := cat(tbs, op(signWithLabel("KeyPackageTBS", tbs)))
	return cat(u16b(1), u16b(uint16(WireFormatKeyPackage)), kp)
}

func signWithLabel(label string, content []byte) []byte {
	return ed25519.Sign(testSigner, cat(op([]byte("MLS 1.0 "+label)), op(content)))
}

// privMsg builds a PrivateMessage MLSMessage from raw field encodings.
func privMsg(groupID, epoch, ct, rest []byte) []byte {
	return cat(u16b(1), u16b(2), groupID, epoch, ct, rest)
}

func TestBuiltKeyPackage(t *testing.T) {
	kp, err := ParseKeyPackage(buildKeyPackage(kpOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.VerifySignature(); err != nil {
		t.Fatal(err)
	}
	if string(kp.Identity()) != "sovereign:device:test" {
		t.Fatalf("identity %q", kp.Identity())
	}
	x509 := buildKeyPackage(kpOpts{credType: 2, cred: op(cat(op([]byte("cert1")), op([]byte("cert2"))))})
	kp, err = ParseKeyPackage(x509)
	if err != nil {
		t.Fatal(err)
	}
	if kp.CredentialType() != CredentialX509 || len(kp.Certificates()) != 2 || string(kp.Certificates()[1]) != "cert2" || kp.Identity() != nil {
		t.Fatalf("x509 credential: %+v", kp.LeafNode.Credential)
	}
	caps := cat(op(u16b(1)), op(cat(u16b(1), u16b(2))), op(nil), op(nil), op(cat(u16b(1), u16b(2))))
	kp, err = ParseKeyPackage(buildKeyPackage(kpOpts{caps: caps, kpExt: op(cat(u16b(0x000a), op(nil)))}))
	if err != nil {
		t.Fatal(err)
	}
	if got := kp.LeafNode.Capabilities; len(got.CipherSuites) != 2 || got.Credentials[1] != 2 || got.Versions[0] != 1 {
		t.Fatalf("capabilities %+v", got)
	}
	if !kp.HasExtension(0x000a) || kp.HasExtension(1) {
		t.Fatal("HasExtension")
	}
	// An Ed448 suite parses (SHA-512 ref) but cannot be verified.
	kp, err = ParseKeyPackage(buildKeyPackage(kpOpts{suite: SuiteX448AES256SHA512Ed448}))
	if err != nil {
		t.Fatal(err)
	}
	if len(kp.Ref()) != 64 {
		t.Fatalf("Ed448 suite ref of %d bytes", len(kp.Ref()))
	}
	if err := kp.VerifySignature(); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("Ed448 VerifySignature = %v, want ErrUnsupportedSuite", err)
	}
}

func TestRejects(t *testing.T) {
	fs := loadFixtures(t)
	priv := mustFixture(t, fs, "private_app_short").bytes
	kp := mustFixture(t, fs, "kp_bob_s1").bytes
	welcome := mustFixture(t, fs, "welcome_add_bob").bytes
	rest := cat(op(nil), op([]byte{1}), op([]byte{2}))
	epoch := u64b(1)
	// A minimal public commit: member sender 0, no proposals, then the
	// optional<UpdatePath> presence byte under test.
	pubCommit := func(optional byte) []byte {
		return cat(u16b(1), u16b(1), op([]byte("g")), epoch, []byte{1}, []byte{0, 0, 0, 0}, op(nil), []byte{3},
			op(nil), []byte{optional}, op([]byte("sig")), op([]byte("tag")), op([]byte("mac")))
	}
	if _, err := ParseMessage(pubCommit(0)); err != nil {
		t.Fatalf("minimal public commit: %v", err)
	}
	withTrailing := func(b []byte) []byte { return cat(b, []byte{0}) }
	setSuite := func(b []byte, s uint16) []byte { b = bytes.Clone(b); b[6], b[7] = byte(s>>8), byte(s); return b }

	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		want  error
	}{
		{"empty", parseMsg, nil, ErrTruncated},
		{"one byte", parseMsg, []byte{0}, ErrTruncated},
		{"wrong version 0", parseMsg, cat(u16b(0), priv[2:]), ErrUnsupportedVersion},
		{"wrong version 2", parseMsg, cat(u16b(2), priv[2:]), ErrUnsupportedVersion},
		{"wire format 0", parseMsg, cat(u16b(1), u16b(0), priv[4:]), ErrUnknownWireFormat},
		{"wire format 6", parseMsg, cat(u16b(1), u16b(6), priv[4:]), ErrUnknownWireFormat},
		{"wire format ffff", parseMsg, cat(u16b(1), u16b(0xffff), priv[4:]), ErrUnknownWireFormat},
		{"private: non-minimal 2-byte varint", parseMsg, privMsg([]byte{0x40, 0x01, 'g'}, epoch, []byte{1}, rest), ErrMalformed},
		{"private: non-minimal 4-byte varint", parseMsg, privMsg([]byte{0x80, 0, 0, 1, 'g'}, epoch, []byte{1}, rest), ErrMalformed},
		{"private: 4-byte varint of 2-byte value", parseMsg, privMsg(cat([]byte{0x80, 0, 0x3f, 0xff}, make([]byte, 0x3fff)), epoch, []byte{1}, rest), ErrMalformed},
		{"private: 11 prefix", parseMsg, privMsg([]byte{0xc0, 0, 0, 0, 0, 0, 0, 1, 'g'}, epoch, []byte{1}, rest), ErrMalformed},
		{"private: content type 0", parseMsg, privMsg(op([]byte("g")), epoch, []byte{0}, rest), ErrMalformed},
		{"private: content type 4", parseMsg, privMsg(op([]byte("g")), epoch, []byte{4}, rest), ErrMalformed},
		{"private: 1 GiB group id", parseMsg, privMsg([]byte{0xbf, 0xff, 0xff, 0xff}, epoch, []byte{1}, rest), ErrTruncated},
		{"private: length one past the end", parseMsg, privMsg(op([]byte("g")), epoch, []byte{1}, cat(op(nil), op(nil), []byte{2, 'x'})), ErrTruncated},
		{"private: truncated epoch", parseMsg, privMsg(op([]byte("g")), []byte{0, 0, 0}, nil, nil), ErrTruncated},
		{"private: trailing byte", parseMsg, withTrailing(priv), ErrTrailingData},
		{"public: bad optional byte 2", parseMsg, pubCommit(2), ErrMalformed},
		{"public: bad optional byte ff", parseMsg, pubCommit(0xff), ErrMalformed},
		{"public: sender type 5", parseMsg, cat(u16b(1), u16b(1), op([]byte("g")), epoch, []byte{5}), ErrMalformed},
		{"public: custom proposal type", parseMsg, cat(u16b(1), u16b(1), op([]byte("g")), epoch, []byte{2, 0, 0, 0, 0}, op(nil), []byte{2}, u16b(0xf000)), ErrUnsupported},
		{"public: trailing byte", parseMsg, withTrailing(pubCommit(0)), ErrTrailingData},
		{"welcome: trailing byte", parseMsg, withTrailing(welcome), ErrTrailingData},
		{"welcome: ParseWelcome trailing", parseWelcome2, withTrailing(welcome), ErrTrailingData},
		{"welcome: given a key package", parseWelcome2, kp, ErrWrongWireFormat},
		{"group info: given a key package", parseGroupInfo2, kp, ErrWrongWireFormat},
		{"key package: given a welcome", parseKP, welcome, ErrWrongWireFormat},
		{"key package: trailing byte", parseKP, withTrailing(kp), ErrTrailingData},
		{"key package: unknown suite", parseKP, setSuite(kp, 8), ErrUnsupportedSuite},
		{"key package: version 2", parseKP, cat(kp[:4], u16b(2), kp[6:]), ErrUnsupportedVersion},
		{"key package: update source", parseKP, buildKeyPackage(kpOpts{source: byte(SourceUpdate)}), ErrMalformed},
		{"key package: commit source", parseKP, buildKeyPackage(kpOpts{source: byte(SourceCommit)}), ErrMalformed},
		{"key package: source 9", parseKP, buildKeyPackage(kpOpts{source: 9}), ErrMalformed},
		{"key package: custom credential", parseKP, buildKeyPackage(kpOpts{credType: 0xf000, cred: op(nil)}), ErrUnsupported},
		{"key package: odd capability vector", parseKP, buildKeyPackage(kpOpts{caps: []byte{1, 0, 0, 0, 0, 0}}), ErrMalformed},
		{"key package: duplicate extension", parseKP, buildKeyPackage(kpOpts{kpExt: op(cat(u16b(10), op(nil), u16b(10), op(nil)))}), ErrMalformed},
		{"key package: 1 GiB certificate vector", parseKP, buildKeyPackage(kpOpts{credType: 2, cred: []byte{0xbf, 0xff, 0xff, 0xff}}), ErrTruncated},
		{"key package: 1 GiB capabilities", parseKP, buildKeyPackage(kpOpts{caps: []byte{0xbf, 0xff, 0xff, 0xfe}}), ErrTruncated},
		{"key package: non-minimal identity length", parseKP, buildKeyPackage(kpOpts{cred: []byte{0x40, 0x01, 'x'}}), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func parseMsg(b []byte) error        { _, err := ParseMessage(b); return err }
func parseKP(b []byte) error         { _, err := ParseKeyPackage(b); return err }
func parseWelcome2(b []byte) error   { _, err := ParseWelcome(b); return err }
func parseGroupInfo2(b []byte) error { _, err := ParseGroupInfo(b); return err }

// TestTruncatedFixtures checks that every strict prefix of every fixture is
// rejected, by ParseMessage and by the typed parser.
func TestTruncatedFixtures(t *testing.T) {
	for name, f := range loadFixtures(t) {
		typed := map[string]func([]byte) error{
			"mls_key_package": parseKP, "mls_welcome": parseWelcome2, "mls_group_info": parseGroupInfo2,
		}[f.WireFormat]
		for n := 0; n < len(f.bytes); n++ {
			if _, err := ParseMessage(f.bytes[:n]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes accepted", name, n, len(f.bytes))
			}
			if typed != nil && typed(f.bytes[:n]) == nil {
				t.Fatalf("%s: typed parser accepted a prefix of %d/%d bytes", name, n, len(f.bytes))
			}
		}
	}
}

func TestOptionalAndVarintEdges(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		v    uint32
		n    int
		want error
	}{
		{[]byte{0x00}, 0, 1, nil},
		{[]byte{0x3f}, 63, 1, nil},
		{[]byte{0x40, 0x40}, 64, 2, nil},
		{[]byte{0x40, 0x3f}, 0, 0, ErrMalformed},
		{[]byte{0x7f, 0xff}, 16383, 2, nil},
		{[]byte{0x80, 0x00, 0x3f, 0xff}, 0, 0, ErrMalformed},
		{[]byte{0x80, 0x00, 0x40, 0x00}, 16384, 4, nil},
		{[]byte{0xbf, 0xff, 0xff, 0xff}, MaxVarint, 4, nil},
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 0}, 0, 0, ErrMalformed},
		{[]byte{0xff}, 0, 0, ErrMalformed},
		{[]byte{0x40}, 0, 0, ErrTruncated},
		{[]byte{0x80, 0, 0}, 0, 0, ErrTruncated},
		{nil, 0, 0, ErrTruncated},
	} {
		v, n, err := ReadVarint(tc.in)
		if !errors.Is(err, tc.want) || v != tc.v || n != tc.n {
			t.Errorf("ReadVarint(%x) = %d, %d, %v; want %d, %d, %v", tc.in, v, n, err, tc.v, tc.n, tc.want)
		}
	}
	for b, want := range map[byte]error{0: nil, 1: nil, 2: ErrMalformed, 0x80: ErrMalformed} {
		c := cursor{[]byte{b}}
		if _, err := c.optional(); !errors.Is(err, want) {
			t.Errorf("optional(%d) = %v, want %v", b, err, want)
		}
	}
	c := cursor{}
	if _, err := c.optional(); !errors.Is(err, ErrTruncated) {
		t.Errorf("optional on empty input = %v", err)
	}
}

// TestHugeLengthsDoNotAllocate feeds 100-byte inputs whose length prefixes
// claim 1 GiB at several nesting levels and checks that parsing allocates only
// a small, input-independent amount.
func TestHugeLengthsDoNotAllocate(t *testing.T) {
	huge := []byte{0xbf, 0xff, 0xff, 0xff}
	pad := func(b []byte) []byte { return cat(b, make([]byte, 100-len(b)%100)) }
	inputs := [][]byte{
		pad(privMsg(huge, nil, nil, nil)),
		pad(privMsg(op([]byte("g")), u64b(1), []byte{1}, huge)),
		pad(cat(u16b(1), u16b(3), u16b(1), huge)),                                                             // welcome secrets
		pad(cat(u16b(1), u16b(4), u16b(1), u16b(1), huge)),                                                    // group info group id
		pad(cat(u16b(1), u16b(5), u16b(1), u16b(1), huge)),                                                    // key package init key
		pad(cat(u16b(1), u16b(5), u16b(1), u16b(1), op(nil), op(nil), op(nil), huge)),                         // credential type 0x8000? no: basic
		pad(cat(u16b(1), u16b(1), op([]byte("g")), u64b(1), []byte{1, 0, 0, 0, 0}, op(nil), []byte{3}, huge)), // commit proposals
	}
	for i, in := range inputs {
		if _, err := ParseMessage(in); err == nil {
			t.Fatalf("input %d parsed", i)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const runs = 100
		for range runs {
			_, _ = ParseMessage(in)
		}
		runtime.ReadMemStats(&after)
		if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 4096 {
			t.Errorf("input %d: %d bytes allocated per parse of a %d-byte input", i, perRun, len(in))
		}
	}
}

// TestPrivateMessageAllocs pins the hot path: parsing a private message
// allocates only the Message itself.
func TestPrivateMessageAllocs(t *testing.T) {
	b := mustFixture(t, loadFixtures(t), "private_app_1k").bytes
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseMessage(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("ParseMessage(private) = %v allocs, want <= 1", allocs)
	}
	var m Message
	allocs = testing.AllocsPerRun(100, func() {
		if err := ParseMessageInto(&m, b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseMessageInto(private) = %v allocs, want 0", allocs)
	}
}

func TestResultsAliasInputWithClippedCapacity(t *testing.T) {
	b := bytes.Clone(mustFixture(t, loadFixtures(t), "private_app_short").bytes)
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if cap(m.GroupID) != len(m.GroupID) {
		t.Fatal("group id capacity not clipped")
	}
	_ = append(m.GroupID, 0xff) // must not overwrite the epoch that follows
	if m2, _ := ParseMessage(b); m2.Epoch != m.Epoch {
		t.Fatal("append to GroupID overwrote the input")
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		WireFormatPrivateMessage.String(): "mls_private_message",
		WireFormat(9).String():            "wire_format(9)",
		ContentCommit.String():            "commit",
		ContentType(0).String():           "content_type(0)",
		SenderNewMemberCommit.String():    "new_member_commit",
		CredentialX509.String():           "x509",
		SourceKeyPackage.String():         "key_package",
		SuiteName(2):                      "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
		SuiteName(0x0a0a):                 "0x0a0a",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if SupportedSuite(0) || SupportedSuite(8) || !SupportedSuite(7) || SignatureSupported(6) || !SignatureSupported(5) {
		t.Error("suite support table wrong")
	}
	if _, err := SuiteHash(0x0a0a); !errors.Is(err, ErrUnsupportedSuite) {
		t.Error("SuiteHash of unknown suite")
	}
}

// TestManyExtensionsLinear checks that duplicate detection stays linear:
// 65536 distinct extension types (~196 KB) then a duplicate of the first.
func TestManyExtensionsLinear(t *testing.T) {
	var list []byte
	for i := range 1 << 16 {
		list = append(list, byte(i>>8), byte(i), 0)
	}
	c := cursor{op(list)}
	exts, err := parseExtensions(&c)
	if err != nil || len(exts) != 1<<16 {
		t.Fatalf("%d extensions, %v", len(exts), err)
	}
	for _, dupAt := range []int{3, 40} {
		l := cat(list[:dupAt*3], []byte{0, 1, 0})
		c = cursor{op(l)}
		if _, err := parseExtensions(&c); !errors.Is(err, ErrMalformed) {
			t.Fatalf("duplicate after %d: %v", dupAt, err)
		}
	}
}
