package mls

import (
	"bytes"
	"errors"
	"testing"
)

// encodePrivate re-encodes a parsed PrivateMessage, to check that every field
// was read from the right place.
func encodePrivate(m *Message) []byte {
	b := []byte{0, 1, 0, byte(WireFormatPrivateMessage)}
	b = appendOpaque(b, m.GroupID)
	for i := 7; i >= 0; i-- {
		b = append(b, byte(m.Epoch>>(8*i)))
	}
	b = append(b, byte(m.ContentType))
	b = appendOpaque(b, m.AuthenticatedData)
	b = appendOpaque(b, m.EncryptedSenderData)
	return appendOpaque(b, m.Ciphertext)
}

// encodeWelcome re-encodes a parsed Welcome as an MLSMessage.
func encodeWelcome(w *Welcome) []byte {
	b := []byte{0, 1, 0, byte(WireFormatWelcome), byte(w.CipherSuite >> 8), byte(w.CipherSuite)}
	var secrets []byte
	for _, s := range w.Secrets {
		secrets = appendOpaque(secrets, s.NewMember)
		secrets = appendOpaque(secrets, s.KEMOutput)
		secrets = appendOpaque(secrets, s.Ciphertext)
	}
	b = appendOpaque(b, secrets)
	return appendOpaque(b, w.EncryptedGroupInfo)
}

func TestVarintDeserializationVectors(t *testing.T) {
	var cases []struct {
		Header hexBytes `json:"vlbytes_header"`
		Length uint32   `json:"length"`
	}
	loadVectors(t, "deserialization.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases in deserialization.json")
	}
	for _, tc := range cases {
		v, n, err := ReadVarint(tc.Header)
		if err != nil || v != tc.Length || n != len(tc.Header) {
			t.Errorf("ReadVarint(%x) = %d, %d, %v; want %d, %d", []byte(tc.Header), v, n, err, tc.Length, len(tc.Header))
		}
		if got := appendVarint(nil, tc.Length); !bytes.Equal(got, tc.Header) {
			t.Errorf("appendVarint(%d) = %x, want %x", tc.Length, got, []byte(tc.Header))
		}
		// A vlbytes header claiming more than the input holds must fail cleanly.
		if tc.Length > 0 {
			c := cursor{tc.Header}
			if _, err := c.opaque(); !errors.Is(err, ErrTruncated) {
				t.Errorf("opaque(%x) with no body: err = %v, want ErrTruncated", []byte(tc.Header), err)
			}
		}
	}
}

type messageCase struct {
	Welcome     hexBytes `json:"mls_welcome"`
	GroupInfo   hexBytes `json:"mls_group_info"`
	KeyPackage  hexBytes `json:"mls_key_package"`
	PublicApp   hexBytes `json:"public_message_application"`
	PublicProp  hexBytes `json:"public_message_proposal"`
	PublicCommt hexBytes `json:"public_message_commit"`
	Private     hexBytes `json:"private_message"`
}

func TestMessagesVectors(t *testing.T) {
	var cases []messageCase
	loadVectors(t, "messages.json", &cases)
	if len(cases) != 300 {
		t.Fatalf("messages.json: %d cases, want 300", len(cases))
	}
	parse := func(i int, name string, b []byte, want WireFormat) *Message {
		t.Helper()
		m, err := ParseMessage(b)
		if err != nil {
			t.Fatalf("case %d %s: %v", i, name, err)
		}
		if m.WireFormat != want {
			t.Fatalf("case %d %s: wire format %v, want %v", i, name, m.WireFormat, want)
		}
		return m
	}
	for i, tc := range cases {
		// Welcome: fully parsed, round-trips, typed parser agrees.
		m := parse(i, "mls_welcome", tc.Welcome, WireFormatWelcome)
		if got := encodeWelcome(m.Welcome); !bytes.Equal(got, tc.Welcome) {
			t.Errorf("case %d: welcome does not re-encode to its input", i)
		}
		if w, err := ParseWelcome(tc.Welcome); err != nil || w.CipherSuite != m.CipherSuite() || len(w.Secrets) == 0 {
			t.Errorf("case %d: ParseWelcome = %+v, %v", i, w, err)
		}

		// GroupInfo.
		m = parse(i, "mls_group_info", tc.GroupInfo, WireFormatGroupInfo)
		gi, err := ParseGroupInfo(tc.GroupInfo)
		if err != nil || gi.GroupContext.Epoch != m.Epoch || !bytes.Equal(gi.GroupContext.GroupID, m.GroupID) {
			t.Errorf("case %d: ParseGroupInfo disagrees with ParseMessage: %v", i, err)
		}

		// KeyPackage: fully parsed; ref is the suite hash size; VerifySignature
		// must not panic (the vectors' signatures are not meant to verify).
		m = parse(i, "mls_key_package", tc.KeyPackage, WireFormatKeyPackage)
		kp, err := ParseKeyPackage(tc.KeyPackage)
		if err != nil {
			t.Fatalf("case %d: ParseKeyPackage: %v", i, err)
		}
		if !bytes.Equal(kp.Raw(), tc.KeyPackage[4:]) || !bytes.Equal(kp.Ref(), m.KeyPackage.Ref()) {
			t.Errorf("case %d: key package raw/ref mismatch", i)
		}
		if h, _ := SuiteHash(kp.CipherSuite); len(kp.Ref()) != h.Size() {
			t.Errorf("case %d: ref of %d bytes", i, len(kp.Ref()))
		}
		_ = kp.VerifySignature()

		// Public messages: all share the private message's group id and
		// authenticated data; content types and sender read back.
		priv := parse(i, "private_message", tc.Private, WireFormatPrivateMessage)
		if got := encodePrivate(priv); !bytes.Equal(got, tc.Private) {
			t.Errorf("case %d: private message does not re-encode to its input", i)
		}
		for _, p := range []struct {
			name string
			b    []byte
			ct   ContentType
		}{
			{"public_message_application", tc.PublicApp, ContentApplication},
			{"public_message_proposal", tc.PublicProp, ContentProposal},
			{"public_message_commit", tc.PublicCommt, ContentCommit},
		} {
			m := parse(i, p.name, p.b, WireFormatPublicMessage)
			if m.ContentType != p.ct {
				t.Errorf("case %d %s: content type %v", i, p.name, m.ContentType)
			}
			if !bytes.Equal(m.GroupID, priv.GroupID) || !bytes.Equal(m.AuthenticatedData, priv.AuthenticatedData) {
				t.Errorf("case %d %s: group id/authenticated data differ from the private message", i, p.name)
			}
			if m.Sender.Type < SenderMember || m.Sender.Type > SenderNewMemberCommit {
				t.Errorf("case %d %s: sender %v", i, p.name, m.Sender)
			}
			if (m.Sender.Type == SenderMember) != (m.MembershipTag != nil) {
				t.Errorf("case %d %s: membership tag presence wrong for %v", i, p.name, m.Sender.Type)
			}
			if (p.ct == ContentCommit) != (m.ConfirmationTag != nil) {
				t.Errorf("case %d %s: confirmation tag presence wrong", i, p.name)
			}
			if p.ct == ContentProposal && len(m.ProposalTypes) != 1 {
				t.Errorf("case %d %s: proposal types %v", i, p.name, m.ProposalTypes)
			}
		}
	}
}

func TestWelcomeVectorsKeyPackageRef(t *testing.T) {
	var cases []struct {
		CipherSuite uint16   `json:"cipher_suite"`
		KeyPackage  hexBytes `json:"key_package"`
		Welcome     hexBytes `json:"welcome"`
	}
	loadVectors(t, "welcome.json", &cases)
	if len(cases) == 0 {
		t.Fatal("no cases in welcome.json")
	}
	for i, tc := range cases {
		kp, err := ParseKeyPackage(tc.KeyPackage)
		if err != nil {
			t.Fatalf("case %d: ParseKeyPackage: %v", i, err)
		}
		if kp.CipherSuite != tc.CipherSuite {
			t.Errorf("case %d: suite %d, want %d", i, kp.CipherSuite, tc.CipherSuite)
		}
		w, err := ParseWelcome(tc.Welcome)
		if err != nil {
			t.Fatalf("case %d: ParseWelcome: %v", i, err)
		}
		if w.CipherSuite != tc.CipherSuite {
			t.Errorf("case %d: welcome suite %d, want %d", i, w.CipherSuite, tc.CipherSuite)
		}
		if !w.Addresses(kp.Ref()) {
			t.Errorf("case %d: welcome refs %x do not include key package ref %x", i, w.NewMembers(), kp.Ref())
		}
		// These key packages come from real clients: their signatures verify.
		switch err := kp.VerifySignature(); {
		case !SignatureSupported(kp.CipherSuite):
			if !errors.Is(err, ErrUnsupportedSuite) {
				t.Errorf("case %d: suite %d: err = %v, want ErrUnsupportedSuite", i, kp.CipherSuite, err)
			}
		case err != nil:
			t.Errorf("case %d: suite %d: VerifySignature: %v", i, kp.CipherSuite, err)
		}
	}
}
