package mlstest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/mls"
)

func TestKeyPackageRoundTrips(t *testing.T) {
	nb := time.Unix(1_800_000_000, 0)
	na := nb.Add(24 * time.Hour)
	for _, lastResort := range []bool{false, true} {
		id := "sovereign:device:0192b6a0-0000-7000-8000-000000000001"
		b := KeyPackage(Options{Identity: id, NotBefore: nb, NotAfter: na, LastResort: lastResort})
		kp, err := mls.ParseKeyPackage(b.Bytes)
		if err != nil {
			t.Fatalf("ParseKeyPackage: %v", err)
		}
		if err := kp.VerifySignature(); err != nil {
			t.Fatalf("VerifySignature: %v", err)
		}
		if !bytes.Equal(kp.Ref(), b.Ref) {
			t.Errorf("ref %x, builder says %x", kp.Ref(), b.Ref)
		}
		if kp.CipherSuite != Suite || kp.CredentialType() != mls.CredentialBasic || string(kp.Identity()) != id {
			t.Errorf("suite %d credential %v identity %q", kp.CipherSuite, kp.CredentialType(), kp.Identity())
		}
		if f, l := kp.Lifetime(); f != uint64(nb.Unix()) || l != uint64(na.Unix()) {
			t.Errorf("lifetime %d..%d", f, l)
		}
		if kp.HasExtension(ExtensionLastResort) != lastResort {
			t.Errorf("last_resort extension = %v, want %v", kp.HasExtension(ExtensionLastResort), lastResort)
		}
		if !bytes.Equal(kp.SignatureKey(), b.Signer.Public().(ed25519.PublicKey)) {
			t.Error("signature key is not the signer's public key")
		}
	}
}

func TestKeyPackageSignaturesCoverEveryField(t *testing.T) {
	b := KeyPackage(Options{Identity: "sovereign:device:x"})
	// Flip one bit in each byte after the MLSMessage header: the result
	// either fails to parse or fails signature verification.
	for i := 4; i < len(b.Bytes); i++ {
		bad := bytes.Clone(b.Bytes)
		bad[i] ^= 0x01
		kp, err := mls.ParseKeyPackage(bad)
		if err != nil {
			continue
		}
		if err := kp.VerifySignature(); !errors.Is(err, mls.ErrInvalidSignature) {
			t.Fatalf("bit flip at byte %d of %d verified (%v)", i, len(b.Bytes), err)
		}
	}
}

func TestKeyPackagesAreFresh(t *testing.T) {
	a := KeyPackage(Options{Identity: "x"})
	b := KeyPackage(Options{Identity: "x", Signer: a.Signer})
	if bytes.Equal(a.Ref, b.Ref) {
		t.Fatal("two packages share a ref")
	}
}
