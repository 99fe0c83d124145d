package mls

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTSMLSFixtures checks every ts-mls fixture against what the generator
// recorded in testdata/tsmls/index.json.
func TestTSMLSFixtures(t *testing.T) {
	fs := loadFixtures(t)
	if len(fs) < 10 {
		t.Fatalf("only %d fixtures", len(fs))
	}
	for name, f := range fs {
		t.Run(name, func(t *testing.T) {
			if len(f.bytes) != f.Size {
				t.Fatalf("size %d, index says %d", len(f.bytes), f.Size)
			}
			m, err := ParseMessage(f.bytes)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if m.WireFormat.String() != f.WireFormat {
				t.Fatalf("wire format %v, want %s", m.WireFormat, f.WireFormat)
			}
			switch m.WireFormat {
			case WireFormatKeyPackage:
				checkKeyPackageFixture(t, f)
			case WireFormatPrivateMessage, WireFormatPublicMessage:
				if !bytes.Equal(m.GroupID, f.GroupID) || m.Epoch != f.Epoch || m.ContentType.String() != f.ContentType {
					t.Errorf("got group %q epoch %d %v; want %q %d %s", m.GroupID, m.Epoch, m.ContentType, f.GroupID, f.Epoch, f.ContentType)
				}
				if f.AuthenticatedData != nil && !bytes.Equal(m.AuthenticatedData, f.AuthenticatedData) {
					t.Errorf("authenticated data %x, want %x", m.AuthenticatedData, []byte(f.AuthenticatedData))
				}
				if m.WireFormat == WireFormatPrivateMessage {
					if !bytes.Equal(encodePrivate(m), f.bytes) {
						t.Error("private message does not re-encode to its input")
					}
					break
				}
				if m.Sender.Type.String() != f.SenderType || m.Sender.Index != f.LeafIndex {
					t.Errorf("sender %v/%d, want %s/%d", m.Sender.Type, m.Sender.Index, f.SenderType, f.LeafIndex)
				}
				if m.MembershipTag == nil || len(m.Signature) != 64 {
					t.Errorf("membership tag %x, signature of %d bytes", m.MembershipTag, len(m.Signature))
				}
				if m.ContentType == ContentProposal && (len(m.ProposalTypes) != 1 || m.ProposalTypes[0] != ProposalGroupContextExtensions) {
					t.Errorf("proposal types %v", m.ProposalTypes)
				}
				if m.ContentType == ContentCommit && len(m.ConfirmationTag) != 32 {
					t.Errorf("confirmation tag %x", m.ConfirmationTag)
				}
			case WireFormatWelcome:
				if m.Welcome.CipherSuite != f.CipherSuite || len(m.Welcome.Secrets) != len(f.NewMembers) {
					t.Fatalf("welcome suite %d with %d secrets", m.Welcome.CipherSuite, len(m.Welcome.Secrets))
				}
				for i, ref := range f.NewMembers {
					if !bytes.Equal(m.Welcome.Secrets[i].NewMember, unhex(t, ref)) {
						t.Errorf("new_member[%d] = %x, want %s", i, m.Welcome.Secrets[i].NewMember, ref)
					}
				}
				kp, err := ParseKeyPackage(mustFixture(t, fs, f.AddressedKP).bytes)
				if err != nil {
					t.Fatal(err)
				}
				if !m.Welcome.Addresses(kp.Ref()) {
					t.Errorf("welcome does not address %s (ref %x)", f.AddressedKP, kp.Ref())
				}
				if !bytes.Equal(encodeWelcome(m.Welcome), f.bytes) {
					t.Error("welcome does not re-encode to its input")
				}
			case WireFormatGroupInfo:
				gc := m.GroupInfo.GroupContext
				if gc.CipherSuite != f.CipherSuite || !bytes.Equal(gc.GroupID, f.GroupID) || gc.Epoch != f.Epoch || m.GroupInfo.Signer != f.Signer {
					t.Errorf("group info suite %d group %q epoch %d signer %d", gc.CipherSuite, gc.GroupID, gc.Epoch, m.GroupInfo.Signer)
				}
				if !bytes.Equal(m.GroupID, gc.GroupID) || m.Epoch != gc.Epoch {
					t.Error("Message header disagrees with the group context")
				}
				if len(gc.TreeHash) != 32 || len(gc.ConfirmedTranscriptHash) != 32 || len(m.GroupInfo.ConfirmationTag) != 32 {
					t.Error("hash/tag sizes wrong for SHA-256")
				}
				var types []uint16
				for _, e := range m.GroupInfo.Extensions {
					types = append(types, e.Type)
				}
				if len(types) != 2 { // external_pub and ratchet_tree
					t.Errorf("group info extensions %v", types)
				}
			}
		})
	}
}

func checkKeyPackageFixture(t *testing.T, f *fixture) {
	t.Helper()
	kp, err := ParseKeyPackage(f.bytes)
	if err != nil {
		t.Fatalf("ParseKeyPackage: %v", err)
	}
	if kp.CipherSuite != f.CipherSuite {
		t.Errorf("suite %d, want %d", kp.CipherSuite, f.CipherSuite)
	}
	if !bytes.Equal(kp.Ref(), f.Ref) {
		t.Errorf("ref %x, ts-mls says %x", kp.Ref(), []byte(f.Ref))
	}
	if kp.CredentialType().String() != f.CredentialType {
		t.Errorf("credential %v, want %s", kp.CredentialType(), f.CredentialType)
	}
	if string(kp.Identity()) != f.Identity {
		t.Errorf("identity %q, want %q", kp.Identity(), f.Identity)
	}
	if len(kp.Certificates()) != len(f.Certificates) {
		t.Errorf("%d certificates, want %d", len(kp.Certificates()), len(f.Certificates))
	}
	for i, c := range f.Certificates {
		if !bytes.Equal(kp.Certificates()[i], unhex(t, c)) {
			t.Errorf("certificate %d differs", i)
		}
	}
	if nb, na := kp.Lifetime(); nb != f.NotBefore || na != f.NotAfter {
		t.Errorf("lifetime %d..%d, want %d..%d", nb, na, f.NotBefore, f.NotAfter)
	}
	if !kp.ValidAt(time.Unix(int64(f.NotBefore), 0)) || kp.ValidAt(time.Unix(int64(f.NotBefore)-1, 0)) {
		t.Error("ValidAt does not honour not_before")
	}
	if !SupportedSuite(kp.CipherSuite) || !SignatureSupported(kp.CipherSuite) {
		t.Fatalf("suite %d not supported", kp.CipherSuite)
	}
	if err := kp.VerifySignature(); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	if len(kp.Raw()) != len(f.bytes)-4 {
		t.Error("Raw is not the message minus its header")
	}
	// Flipping a bit anywhere in the leaf node or the signatures must break
	// a signature (or the parse).
	for _, off := range []int{len(f.bytes) - 1, len(f.bytes) / 2} {
		bad := bytes.Clone(f.bytes)
		bad[off] ^= 0x01
		kp, err := ParseKeyPackage(bad)
		if err != nil {
			continue
		}
		if err := kp.VerifySignature(); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("bit flip at %d: VerifySignature = %v, want ErrInvalidSignature", off, err)
		}
	}
	// The identity is covered by the LeafNodeTBS signature.
	if id := kp.Identity(); len(id) > 0 {
		i := bytes.Index(f.bytes, id)
		bad := bytes.Clone(f.bytes)
		bad[i] ^= 0x20
		kp, err := ParseKeyPackage(bad)
		if err != nil {
			t.Fatal(err)
		}
		if err := kp.VerifySignature(); !errors.Is(err, ErrInvalidSignature) || !strings.Contains(err.Error(), "leaf node") {
			t.Errorf("tampered identity: VerifySignature = %v", err)
		}
	}
}

// TestTSMLSIdentityAccessor pins the identity strings the generator uses, for
// the device-binding code elsewhere.
func TestTSMLSIdentityAccessor(t *testing.T) {
	fs := loadFixtures(t)
	for name, want := range map[string]string{
		"kp_bob_s1":   "device:1234",
		"kp_alice_s1": "sovereign:device:3f2c9a1e-7b4d-4e8a-9c21-0d5e6f7a8b90",
	} {
		kp, err := ParseKeyPackage(mustFixture(t, fs, name).bytes)
		if err != nil {
			t.Fatal(err)
		}
		if kp.CredentialType() != CredentialBasic || string(kp.Identity()) != want {
			t.Errorf("%s: identity %q (%v), want %q", name, kp.Identity(), kp.CredentialType(), want)
		}
	}
}
