package passkey

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
)

func TestNewP256KeyHasFullLengthCoordinates(t *testing.T) {
	// Without the redraw about one key in 128 has a short coordinate, so
	// 2,000 keys would include ~15 of them.
	for i := range 2000 {
		k, err := x509.ParsePKCS8PrivateKey(NewP256Key())
		if err != nil {
			t.Fatal(err)
		}
		ec := k.(*ecdsa.PrivateKey)
		if len(ec.X.Bytes()) != 32 || len(ec.Y.Bytes()) != 32 { //nolint:staticcheck // what virtualwebauthn encodes
			t.Fatalf("key %d has a short coordinate", i)
		}
	}
}

func TestNewRefusesBadOrigins(t *testing.T) {
	for _, o := range []string{"", "chat.example.org", "https://", "::"} {
		if _, err := New(o, Options{}); err == nil {
			t.Errorf("New(%q) accepted", o)
		}
	}
	a, err := New("https://chat.example.org:8443", Options{})
	if err != nil || a.RPID() != "chat.example.org" {
		t.Fatalf("RPID %q %v", a.RPID(), err)
	}
}

func creationOptions(rpID, user string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"publicKey":{"rp":{"id":%q,"name":"x"},"user":{"id":%q,"name":"alice","displayName":"Alice"},
	"challenge":"AAECAwQFBgcICQoLDA0ODw","pubKeyCredParams":[{"type":"public-key","alg":-7}]}}`, rpID,
		base64.RawURLEncoding.EncodeToString([]byte(user))))
}

func requestOptions(rpID string, allow ...[]byte) json.RawMessage {
	list := "[]"
	if len(allow) > 0 {
		b, _ := json.Marshal([]map[string]string{{"type": "public-key", "id": base64.RawURLEncoding.EncodeToString(allow[0])}})
		list = string(b)
	}
	return json.RawMessage(fmt.Sprintf(`{"publicKey":{"challenge":"AAECAwQFBgcICQoLDA0ODw","rpId":%q,"allowCredentials":%s}}`, rpID, list))
}

// signCount reads the counter from an assertion's authenticator data.
func signCount(t *testing.T, assertion json.RawMessage) (uint32, string) {
	t.Helper()
	var a struct {
		Response struct {
			AuthenticatorData string `json:"authenticatorData"`
			UserHandle        string `json:"userHandle"`
		} `json:"response"`
	}
	if err := json.Unmarshal(assertion, &a); err != nil {
		t.Fatal(err)
	}
	ad, err := base64.RawURLEncoding.DecodeString(a.Response.AuthenticatorData)
	if err != nil || len(ad) < 37 {
		t.Fatalf("authenticator data %q: %v", a.Response.AuthenticatorData, err)
	}
	return binary.BigEndian.Uint32(ad[33:37]), a.Response.UserHandle
}

func TestCounterUserHandleAndPersistence(t *testing.T) {
	a, _ := New("https://chat.example.org", Options{})
	if _, err := a.Get(requestOptions("chat.example.org")); err == nil {
		t.Fatal("an assertion with no passkey")
	}
	if _, err := a.Create(creationOptions("other.example", "u1")); err == nil {
		t.Fatal("a passkey for another RP")
	}
	if _, err := a.Create(creationOptions("chat.example.org", "u1")); err != nil {
		t.Fatal(err)
	}
	for want := uint32(1); want <= 3; want++ {
		asr, err := a.Get(requestOptions("chat.example.org"))
		if err != nil {
			t.Fatal(err)
		}
		got, handle := signCount(t, asr)
		if got != want || handle != base64.RawURLEncoding.EncodeToString([]byte("u1")) {
			t.Fatalf("assertion %d: counter %d, user handle %q", want, got, handle)
		}
	}

	// Credentials survive a JSON round trip into a new authenticator.
	saved, err := json.Marshal(a.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	var creds []Credential
	if err := json.Unmarshal(saved, &creds); err != nil || len(creds) != 1 {
		t.Fatalf("%v %d", err, len(creds))
	}
	b, _ := New("https://chat.example.org", Options{FixedCounter: true})
	if err := b.AddCredential(creds[0]); err != nil {
		t.Fatal(err)
	}
	asr, err := b.Get(requestOptions("chat.example.org", creds[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := signCount(t, asr); got != 3 {
		t.Fatalf("fixed counter %d, want 3", got)
	}
	if _, err := b.Get(requestOptions("chat.example.org", []byte("not-a-credential"))); err == nil {
		t.Fatal("an assertion for a credential not in the allow list")
	}
	if err := b.AddCredential(Credential{PrivateKey: []byte("junk")}); err == nil {
		t.Fatal("a credential with a junk key")
	}

	// A second passkey for the same user replaces the first one.
	if _, err := a.Create(creationOptions("chat.example.org", "u1")); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Credentials()); n != 1 {
		t.Fatalf("%d passkeys for one user", n)
	}
}
