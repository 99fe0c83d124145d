package mls

import "testing"

// BenchmarkParseMessagePrivate parses the header of a ~1 KB ts-mls private
// application message: the per-send hot path.
func BenchmarkParseMessagePrivate(b *testing.B) {
	msg := mustFixture(b, loadFixtures(b), "private_app_1k").bytes
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMessageIntoPrivate is BenchmarkParseMessagePrivate reusing a
// caller-owned Message (no allocation).
func BenchmarkParseMessageIntoPrivate(b *testing.B) {
	msg := mustFixture(b, loadFixtures(b), "private_app_1k").bytes
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := ParseMessageInto(&m, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseKeyPackage parses a ts-mls key package and computes its ref.
func BenchmarkParseKeyPackage(b *testing.B) {
	msg := mustFixture(b, loadFixtures(b), "kp_alice_s1").bytes
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseKeyPackage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseKeyPackageVerify parses and verifies both signatures (the
// leaf node's and the key package's) of ts-mls key packages.
func BenchmarkParseKeyPackageVerify(b *testing.B) {
	fs := loadFixtures(b)
	for _, name := range []string{"kp_alice_s1", "kp_p256"} {
		msg := mustFixture(b, fs, name).bytes
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				kp, err := ParseKeyPackage(msg)
				if err != nil {
					b.Fatal(err)
				}
				if err := kp.VerifySignature(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
