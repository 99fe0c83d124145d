package mls

import (
	"bytes"
	"testing"
)

// addSeeds adds the ts-mls fixtures (always present) and, when available,
// every MLSMessage of the shared RFC 9420 vectors.
func addSeeds(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.bytes)
	}
	f.Add(buildKeyPackage(kpOpts{credType: 2, cred: op(cat(op([]byte("c1")), op([]byte("c2"))))}))
	if vectorsDir() == "" {
		return
	}
	var cases []messageCase
	loadVectors(f, "messages.json", &cases)
	for _, c := range cases {
		for _, b := range [][]byte{c.Welcome, c.GroupInfo, c.KeyPackage, c.PublicApp, c.PublicProp, c.PublicCommt, c.Private} {
			f.Add([]byte(b))
		}
	}
	var welcomes []struct {
		KeyPackage hexBytes `json:"key_package"`
		Welcome    hexBytes `json:"welcome"`
	}
	loadVectors(f, "welcome.json", &welcomes)
	for _, w := range welcomes {
		f.Add([]byte(w.KeyPackage))
		f.Add([]byte(w.Welcome))
	}
}

// within reports whether s is empty or lies inside in: parsed slices must
// alias the input, never fresh allocations sized by a length prefix.
func within(in, s []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i+len(s) <= len(in); i++ {
		if &in[i] == &s[0] {
			return true
		}
	}
	return false
}

func FuzzReadVarint(f *testing.F) {
	for _, s := range []string{"00", "3f", "4040", "7fff", "80004000", "bfffffff", "4000", "80000001", "c0", "40", ""} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ReadVarint(b)
		if err != nil {
			return
		}
		if v > MaxVarint || n > len(b) {
			t.Fatalf("ReadVarint(%x) = %d, %d", b, v, n)
		}
		// Only minimal encodings are accepted, so re-encoding is exact.
		if enc := appendVarint(nil, v); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("ReadVarint(%x) = %d but minimal encoding is %x", b, v, enc)
		}
		c := cursor{b}
		if body, err := c.opaque(); err == nil && (len(body) != int(v) || !within(b, body)) {
			t.Fatalf("opaque: %d bytes for length %d", len(body), v)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		for _, s := range [][]byte{m.GroupID, m.AuthenticatedData, m.Content, m.Signature, m.Ciphertext, m.EncryptedSenderData} {
			if !within(b, s) {
				t.Fatal("result does not alias the input")
			}
		}
		switch m.WireFormat {
		case WireFormatPrivateMessage:
			if !bytes.Equal(encodePrivate(m), b) {
				t.Fatal("accepted private message does not re-encode to its input")
			}
		case WireFormatWelcome:
			if !bytes.Equal(encodeWelcome(m.Welcome), b) {
				t.Fatal("accepted welcome does not re-encode to its input")
			}
			if _, err := ParseWelcome(b); err != nil {
				t.Fatalf("ParseMessage accepted what ParseWelcome rejects: %v", err)
			}
		case WireFormatKeyPackage:
			kp, err := ParseKeyPackage(b)
			if err != nil || !bytes.Equal(kp.Ref(), m.KeyPackage.Ref()) {
				t.Fatalf("ParseKeyPackage disagrees: %v", err)
			}
		case WireFormatGroupInfo:
			if _, err := ParseGroupInfo(b); err != nil {
				t.Fatalf("ParseGroupInfo disagrees: %v", err)
			}
		case WireFormatPublicMessage:
			if m.ContentType < ContentApplication || m.ContentType > ContentCommit || m.Sender.Type < SenderMember || m.Sender.Type > SenderNewMemberCommit {
				t.Fatalf("accepted invalid enum: %+v", m)
			}
		}
	})
}

func FuzzParseKeyPackage(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		kp, err := ParseKeyPackage(b)
		if err != nil {
			return
		}
		if !bytes.Equal(kp.Raw(), b[4:]) || !within(b, kp.Identity()) || !within(b, kp.SignatureKey()) {
			t.Fatal("raw/identity/signature key do not alias the input")
		}
		h, err := SuiteHash(kp.CipherSuite)
		if err != nil || len(kp.Ref()) != h.Size() {
			t.Fatalf("ref of %d bytes for suite %d", len(kp.Ref()), kp.CipherSuite)
		}
		_ = kp.VerifySignature() // must not panic on arbitrary keys and signatures
	})
}

func FuzzParseWelcome(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWelcome(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeWelcome(w), b) {
			t.Fatal("accepted welcome does not re-encode to its input")
		}
		for _, r := range w.NewMembers() {
			if !w.Addresses(r) {
				t.Fatal("Addresses disagrees with NewMembers")
			}
		}
	})
}

func FuzzParseGroupInfo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		gi, err := ParseGroupInfo(b)
		if err != nil {
			return
		}
		m, err := ParseMessage(b)
		if err != nil || m.Epoch != gi.GroupContext.Epoch || !bytes.Equal(m.GroupID, gi.GroupContext.GroupID) {
			t.Fatalf("ParseMessage disagrees with ParseGroupInfo: %v", err)
		}
		if !within(b, gi.Signature) || !within(b, gi.GroupContext.TreeHash) {
			t.Fatal("result does not alias the input")
		}
	})
}
