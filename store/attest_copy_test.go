package store

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestCopyCarriesBindingsAndApprovals: `sovereign migrate` (CopyToPostgres)
// carries device bindings, passkey approvals and the recovered flag, and
// the PostgreSQL store serves them alike.
func TestCopyCarriesBindingsAndApprovals(t *testing.T) {
	if !testdb.Postgres() {
		t.Skip("needs PostgreSQL (SOVEREIGN_TEST_DATABASE=postgres)")
	}
	ctx := context.Background()
	src, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "data", "sovereign.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	approval := &models.Assertion{CredentialID: []byte("root"), Nonce: bytes.Repeat([]byte{1}, 32),
		AuthenticatorData: []byte("ad"), ClientDataJSON: []byte(`{"type":"webauthn.get"}`), Signature: []byte("sig")}
	si, err := src.Register(ctx, Registration{Username: "alice", DisplayName: "Alice", Handle: []byte("handle-alice"),
		Credential: models.Credential{CredentialID: []byte("cred-2"), Name: "p", PublicKey: []byte{0xa5}, AttestationType: "none",
			AttestationFormat: "none", Approval: approval, Recovered: true},
		DeviceName: "phone", TokenHash: bytes.Repeat([]byte{2}, 32), SessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b := DeviceBinding{DeviceID: si.DeviceID, SignatureKey: bytes.Repeat([]byte{3}, 32), Assertion: models.Assertion{
		CredentialID: []byte("cred-2"), Nonce: bytes.Repeat([]byte{4}, 32), AuthenticatorData: []byte("ad2"),
		ClientDataJSON: []byte("cdj2"), Signature: []byte("sig2")}}
	if _, err := src.BindDevice(ctx, si.User.ID, CredentialUse{PasskeyID: si.PasskeyID, SignCount: 1}, b); err != nil {
		t.Fatal(err)
	}
	url := testdb.Empty(t)
	if _, err := src.CopyToPostgres(ctx, url, nil); err != nil {
		t.Fatal(err)
	}
	dst, err := Open(ctx, Options{Database: url, Path: filepath.Join(t.TempDir(), "pg")})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for name, st := range map[string]*Store{"sqlite": src, "postgres": dst} {
		u, err := st.LookupUser(ctx, si.User.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := u.Devices[0]
		if !bytes.Equal(d.SignatureKey, b.SignatureKey) || d.Binding() == nil || !bytes.Equal(d.Binding().ClientDataJSON, []byte("cdj2")) ||
			!bytes.Equal(d.Binding().Nonce, b.Assertion.Nonce) {
			t.Fatalf("%s: device %+v", name, d)
		}
		p := u.Passkeys[0]
		if !p.Recovered || p.Approval == nil || !bytes.Equal(p.Approval.Signature, []byte("sig")) || !bytes.Equal(p.Approval.CredentialID, []byte("root")) {
			t.Fatalf("%s: passkey %+v", name, p)
		}
	}
}
