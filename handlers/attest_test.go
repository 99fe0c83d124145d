package handlers_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

type servedAssertion struct {
	CredentialID      string `json:"credential_id"`
	ByCredentialID    string `json:"by_credential_id"`
	Nonce             string `json:"nonce"`
	AuthenticatorData string `json:"authenticator_data"`
	ClientDataJSON    string `json:"client_data_json"`
	Signature         string `json:"signature"`
}

type servedUser struct {
	ID      string `json:"id"`
	Devices []struct {
		ID           string           `json:"id"`
		SignatureKey string           `json:"signature_key"`
		Binding      *servedAssertion `json:"binding"`
	} `json:"devices"`
	Passkeys []struct {
		CredentialID string           `json:"credential_id"`
		PublicKey    string           `json:"public_key"`
		Recovered    bool             `json:"recovered"`
		Approval     *servedAssertion `json:"approval"`
	} `json:"passkeys"`
}

func lookup(t *testing.T, s *testutil.Server, token, who string) servedUser {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/v1/users/"+who, token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("lookup %s = %d %s", who, r.StatusCode, r.Body)
	}
	var u servedUser
	r.JSON(t, &u)
	return u
}

// sentResponse is the response member of an assertion as the client sent
// it.
func sentResponse(t *testing.T, cred json.RawMessage) (id string, resp struct {
	AuthenticatorData string `json:"authenticatorData"`
	ClientDataJSON    string `json:"clientDataJSON"`
	Signature         string `json:"signature"`
}) {
	t.Helper()
	var c struct {
		RawID    string `json:"rawId"`
		Response json.RawMessage
	}
	if err := json.Unmarshal(cred, &c); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(c.Response, &resp); err != nil {
		t.Fatal(err)
	}
	return c.RawID, resp
}

// verifyLikeAPeer checks a served assertion as the SDK does: the
// clientDataJSON's challenge is the one recomputed from the served inputs,
// and the signature verifies under the served public key of the passkey.
func verifyLikeAPeer(t *testing.T, s *testutil.Server, a *servedAssertion, challenge []byte, publicKey []byte) {
	t.Helper()
	cdj := unb64(t, a.ClientDataJSON)
	var cd struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(cdj, &cd); err != nil {
		t.Fatal(err)
	}
	if cd.Type != "webauthn.get" || !bytes.Equal(unb64(t, cd.Challenge), challenge) {
		t.Fatalf("clientDataJSON %s: not a get over the recomputed challenge", cdj)
	}
	ad := unb64(t, a.AuthenticatorData)
	rp := sha256.Sum256([]byte(s.Config.RPID))
	if len(ad) < 37 || !bytes.Equal(ad[:32], rp[:]) || ad[32]&models.FlagUserPresent == 0 {
		t.Fatal("authenticatorData: wrong rp id hash or no user presence")
	}
	key, err := webauthncose.ParsePublicKey(publicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(cdj)
	ok, err := webauthncose.VerifySignature(key, append(append([]byte{}, ad...), h[:]...), unb64(t, a.Signature))
	if err != nil || !ok {
		t.Fatalf("signature does not verify: %v", err)
	}
}

// TestBoundSignInStoresAndServesBinding: a sign-in with a device signature
// key is asked over the binding challenge (recomputable from what the
// answer gives), stores the assertion exactly as sent, and the directory
// (by username and by user id) and the device list serve it, checkable
// against the passkey's served public key. Username, discoverable and
// re-binding sign-ins all bind.
func TestBoundSignInStoresAndServesBinding(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	bob, _ := s.RegisterMember(t, "bob")
	key := bytes.Repeat([]byte{0x42}, 32)

	for _, username := range []string{"alice", ""} {
		b := s.BeginBoundLogin(t, username, key, "")
		want := models.DeviceBindingChallenge(b.NonceBytes(t), key, b.DeviceBinding.DeviceID)
		var opts struct {
			Challenge string `json:"challenge"`
		}
		if err := json.Unmarshal(b.Options, &opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(unb64(t, opts.Challenge), want) {
			t.Fatalf("options.challenge is not the binding challenge")
		}
		cred := pk.Assert(t, b.Options)
		r := s.Do(t, http.MethodPost, "/v1/auth/login/finish", "", map[string]any{
			"ceremony_id": b.CeremonyID, "credential": cred, "device_name": "bound " + username})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("bound login finish = %d %s", r.StatusCode, r.Body)
		}
		var g testutil.Grant
		r.JSON(t, &g)
		if g.DeviceID != b.DeviceBinding.DeviceID {
			t.Fatalf("device %s, bound %s", g.DeviceID, b.DeviceBinding.DeviceID)
		}
		rawID, sent := sentResponse(t, cred)
		for _, who := range []string{"alice", alice.UserID} {
			u := lookup(t, s, bob.Token, who)
			var found bool
			for _, d := range u.Devices {
				if d.ID != g.DeviceID {
					continue
				}
				found = true
				if d.Binding == nil || !bytes.Equal(unb64(t, d.SignatureKey), key) {
					t.Fatalf("device served without its binding: %+v", d)
				}
				a := d.Binding
				if a.CredentialID != rawID || a.AuthenticatorData != sent.AuthenticatorData || a.ClientDataJSON != sent.ClientDataJSON ||
					a.Signature != sent.Signature || a.Nonce != b.DeviceBinding.Nonce {
					t.Fatalf("served binding %+v differs from what was sent %+v", a, sent)
				}
				if len(u.Passkeys) != 1 || u.Passkeys[0].CredentialID != a.CredentialID || u.Passkeys[0].Approval != nil || u.Passkeys[0].Recovered {
					t.Fatalf("passkeys %+v", u.Passkeys)
				}
				verifyLikeAPeer(t, s, a, want, unb64(t, u.Passkeys[0].PublicKey))
				t.Logf("stored per binding: key %d + credential id %d + nonce %d + authenticatorData %d + clientDataJSON %d + signature %d bytes",
					len(key), len(unb64(t, a.CredentialID)), len(unb64(t, a.Nonce)), len(unb64(t, a.AuthenticatorData)),
					len(unb64(t, a.ClientDataJSON)), len(unb64(t, a.Signature)))
			}
			if !found {
				t.Fatalf("bound device %s not served", g.DeviceID)
			}
		}
	}
	// The registration's device is unbound: no key, no binding.
	if u := lookup(t, s, bob.Token, "alice"); u.Devices[0].ID != alice.DeviceID || u.Devices[0].Binding != nil || u.Devices[0].SignatureKey != "" {
		t.Fatalf("unbound device served with a binding: %+v", u.Devices[0])
	}

	// Re-binding an existing device at sign-in (a new key): the device
	// keeps its id and carries the new key.
	key2 := bytes.Repeat([]byte{0x43}, 32)
	b := s.BeginBoundLogin(t, "alice", key2, alice.DeviceID)
	if b.DeviceBinding.DeviceID != alice.DeviceID {
		t.Fatalf("rebinding offered for %s", b.DeviceBinding.DeviceID)
	}
	// Finishing it for another device is refused.
	r := s.Do(t, http.MethodPost, "/v1/auth/login/finish", "", map[string]any{
		"ceremony_id": b.CeremonyID, "credential": pk.Assert(t, b.Options), "device_name": "elsewhere"})
	expectProblem(t, r, http.StatusUnprocessableEntity, "binding_device_mismatch")
	b = s.BeginBoundLogin(t, "alice", key2, alice.DeviceID)
	r = s.Do(t, http.MethodPost, "/v1/auth/login/finish", "", map[string]any{
		"ceremony_id": b.CeremonyID, "credential": pk.Assert(t, b.Options), "device_id": alice.DeviceID})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("rebind = %d %s", r.StatusCode, r.Body)
	}
	if u := lookup(t, s, bob.Token, "alice"); !bytes.Equal(unb64(t, u.Devices[0].SignatureKey), key2) || u.Devices[0].Binding == nil {
		t.Fatalf("rebinding not served: %+v", u.Devices[0])
	}
	// An unbound sign-in works as before and changes no binding.
	plain := s.Login(t, pk, testutil.LoginOptions{Username: "alice", DeviceName: "plain"})
	for _, d := range lookup(t, s, bob.Token, "alice").Devices {
		if d.ID == plain.DeviceID && d.Binding != nil {
			t.Fatal("an unbound sign-in got a binding")
		}
	}
}

// TestBindingRefusesAnotherChallenge: an assertion made over a challenge
// computed with a changed key, device id or nonce is refused at the finish
// step; the server recomputes the challenge, it never takes the client's.
func TestBindingRefusesAnotherChallenge(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	key := bytes.Repeat([]byte{0x42}, 32)
	other := make([]byte, 32)
	for name, change := range map[string]func(nonce []byte, device string) []byte{
		"key": func(n []byte, d string) []byte { return models.DeviceBindingChallenge(n, other, d) },
		"device": func(n []byte, _ string) []byte {
			return models.DeviceBindingChallenge(n, key, "0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f")
		},
		"nonce": func(_ []byte, d string) []byte { return models.DeviceBindingChallenge(make([]byte, 32), key, d) },
	} {
		t.Run(name, func(t *testing.T) {
			b := s.BeginBoundLogin(t, "alice", key, "")
			opts := testutil.WithChallenge(t, b.Options, change(b.NonceBytes(t), b.DeviceBinding.DeviceID))
			r := s.Do(t, http.MethodPost, "/v1/auth/login/finish", "", map[string]any{
				"ceremony_id": b.CeremonyID, "credential": pk.Assert(t, opts), "device_name": "tampered"})
			expectProblem(t, r, http.StatusForbidden, "verification_failed")
			// The same for the binding endpoint.
			r = s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/begin", alice.Token,
				map[string]any{"signature_key": base64.RawURLEncoding.EncodeToString(key)})
			var bb testutil.BoundLogin
			r.JSON(t, &bb)
			opts = testutil.WithChallenge(t, bb.Options, change(bb.NonceBytes(t), bb.DeviceBinding.DeviceID))
			r = s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/finish", alice.Token,
				map[string]any{"ceremony_id": bb.CeremonyID, "credential": pk.Assert(t, opts)})
			expectProblem(t, r, http.StatusForbidden, "verification_failed")
		})
	}
	// Nothing was stored.
	bob, _ := s.RegisterMember(t, "bob")
	for _, d := range lookup(t, s, bob.Token, "alice").Devices {
		if d.Binding != nil {
			t.Fatalf("a refused binding was stored: %+v", d)
		}
	}
}

// TestBindingEndpoint: after registration the device binds itself with the
// binding endpoint; another user's passkey cannot bind it; a rebind
// replaces the key.
func TestBindingEndpoint(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	bob, bobKey := s.RegisterMember(t, "bob")
	key := bytes.Repeat([]byte{7}, 32)

	expectProblem(t, s.BindDevice(t, alice.Token, bobKey, key), http.StatusForbidden, "verification_failed")
	r := s.BindDevice(t, alice.Token, pk, key)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("bind = %d %s", r.StatusCode, r.Body)
	}
	var d struct {
		ID           string           `json:"id"`
		Current      bool             `json:"current"`
		SignatureKey string           `json:"signature_key"`
		Binding      *servedAssertion `json:"binding"`
	}
	r.JSON(t, &d)
	if d.ID != alice.DeviceID || !d.Current || !bytes.Equal(unb64(t, d.SignatureKey), key) || d.Binding == nil {
		t.Fatalf("bound device %+v", d)
	}
	u := lookup(t, s, bob.Token, "alice")
	verifyLikeAPeer(t, s, u.Devices[0].Binding, models.DeviceBindingChallenge(unb64(t, u.Devices[0].Binding.Nonce), key, alice.DeviceID),
		unb64(t, u.Passkeys[0].PublicKey))

	key2 := bytes.Repeat([]byte{8}, 32)
	if r := s.BindDevice(t, alice.Token, pk, key2); r.StatusCode != http.StatusOK {
		t.Fatalf("rebind = %d %s", r.StatusCode, r.Body)
	}
	if u := lookup(t, s, bob.Token, "alice"); !bytes.Equal(unb64(t, u.Devices[0].SignatureKey), key2) {
		t.Fatal("rebind did not replace the key")
	}
	// A ceremony begun by one session cannot be finished by another.
	laptop := s.Login(t, pk, testutil.LoginOptions{DeviceName: "laptop"})
	r = s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/begin", alice.Token,
		map[string]any{"signature_key": base64.RawURLEncoding.EncodeToString(key)})
	var bb testutil.BoundLogin
	r.JSON(t, &bb)
	r = s.Do(t, http.MethodPost, "/v1/me/devices/current/binding/finish", laptop.Token,
		map[string]any{"ceremony_id": bb.CeremonyID, "credential": pk.Assert(t, bb.Options)})
	expectProblem(t, r, http.StatusGone, "ceremony_expired")
}

// TestUnknownUsernameBoundBeginLooksReal: a bound begin for an unknown
// username answers like a known one's, device_binding included.
func TestUnknownUsernameBoundBeginLooksReal(t *testing.T) {
	s := testutil.NewServer(t)
	s.RegisterMember(t, "alice")
	key := bytes.Repeat([]byte{1}, 32)
	for _, name := range []string{"alice", "nobody-here"} {
		b := s.BeginBoundLogin(t, name, key, "")
		if b.DeviceBinding.DeviceID == "" || len(b.NonceBytes(t)) != 32 {
			t.Fatalf("%s: no device_binding", name)
		}
		var opts struct {
			Challenge string `json:"challenge"`
		}
		_ = json.Unmarshal(b.Options, &opts)
		if !bytes.Equal(unb64(t, opts.Challenge), models.DeviceBindingChallenge(b.NonceBytes(t), key, b.DeviceBinding.DeviceID)) {
			t.Fatalf("%s: challenge is not the binding challenge", name)
		}
	}
}

// TestPasskeyApproval: a passkey is added only with the approval of an
// existing passkey of the user over exactly the new credential; the
// directory serves it; the new passkey itself, another user's passkey, and
// an approval over a different key are refused; a recovery's passkey is
// marked recovered and has none.
func TestPasskeyApproval(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	bob, bobKey := s.RegisterMember(t, "bob")

	second, _ := s.AddPasskey(t, alice.Token, pk)
	u := lookup(t, s, bob.Token, "alice")
	if len(u.Passkeys) != 2 || u.Passkeys[1].CredentialID != second.CredentialID() || u.Passkeys[1].Approval == nil {
		t.Fatalf("passkeys %+v", u.Passkeys)
	}
	a := u.Passkeys[1].Approval
	if a.ByCredentialID != pk.CredentialID() {
		t.Fatalf("approved by %s", a.ByCredentialID)
	}
	verifyLikeAPeer(t, s, a, models.PasskeyApprovalChallenge(unb64(t, a.Nonce), unb64(t, u.Passkeys[1].CredentialID),
		unb64(t, u.Passkeys[1].PublicKey)), unb64(t, u.Passkeys[0].PublicKey))

	// Approved by the new passkey itself, or by another user's: refused.
	expectProblem(t, s.AddPasskeyResponse(t, alice.Token, bobKey, bobKey), http.StatusForbidden, "verification_failed")
	third := s.NewPasskey()
	expectProblem(t, s.AddPasskeyResponse(t, alice.Token, third, bobKey), http.StatusForbidden, "verification_failed")

	// An approval made over another new key than the one finished.
	c := s.Begin(t, "/v1/auth/add-passkey/begin", alice.Token, nil)
	decoy := s.NewPasskey()
	ap := s.Begin(t, "/v1/auth/add-passkey/approve/begin", alice.Token, map[string]any{"ceremony_id": c.CeremonyID, "credential": decoy.Create(t, c.Options)})
	r := s.Do(t, http.MethodPost, "/v1/auth/add-passkey/finish", alice.Token, map[string]any{
		"ceremony_id": c.CeremonyID, "credential": third.Create(t, c.Options),
		"approval": map[string]any{"ceremony_id": ap.CeremonyID, "credential": pk.Assert(t, ap.Options)}})
	expectProblem(t, r, http.StatusForbidden, "approval_mismatch")
	// An assertion over a challenge with another public key.
	c = s.Begin(t, "/v1/auth/add-passkey/begin", alice.Token, nil)
	cred := third.Create(t, c.Options)
	var offer struct {
		PasskeyApproval struct {
			Nonce        string `json:"nonce"`
			CredentialID string `json:"credential_id"`
		} `json:"passkey_approval"`
	}
	r = s.Do(t, http.MethodPost, "/v1/auth/add-passkey/approve/begin", alice.Token, map[string]any{"ceremony_id": c.CeremonyID, "credential": cred})
	r.JSON(t, &offer)
	var apb testutil.Ceremony
	r.JSON(t, &apb)
	forged := models.PasskeyApprovalChallenge(unb64(t, offer.PasskeyApproval.Nonce), unb64(t, offer.PasskeyApproval.CredentialID), []byte{0xa5})
	r = s.Do(t, http.MethodPost, "/v1/auth/add-passkey/finish", alice.Token, map[string]any{
		"ceremony_id": c.CeremonyID, "credential": cred,
		"approval": map[string]any{"ceremony_id": apb.CeremonyID, "credential": pk.Assert(t, testutil.WithChallenge(t, apb.Options, forged))}})
	expectProblem(t, r, http.StatusForbidden, "verification_failed")
	if u := lookup(t, s, bob.Token, "alice"); len(u.Passkeys) != 2 {
		t.Fatalf("a refused passkey was added: %+v", u.Passkeys)
	}

	// Recovery: the new passkey is marked recovered, without approval.
	admin, adminKey := s.RegisterAdmin(t, "admin")
	grant := s.StepUp(t, admin.Token, adminKey, "recovery_invite", alice.UserID)
	r = s.Do(t, http.MethodPost, "/v1/admin/users/"+alice.UserID+"/recovery-invite", admin.Token, map[string]any{}, "Sovereign-Step-Up", grant)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("recovery invite = %d %s", r.StatusCode, r.Body)
	}
	var inv struct {
		Code string `json:"code"`
	}
	r.JSON(t, &inv)
	fresh := s.NewPasskey()
	rc := s.Begin(t, "/v1/auth/recover/begin", "", map[string]any{"invite_code": inv.Code})
	r = s.Do(t, http.MethodPost, "/v1/auth/recover/finish", "", map[string]any{
		"ceremony_id": rc.CeremonyID, "credential": fresh.Create(t, rc.Options), "device_name": "clean phone"})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("recover = %d %s", r.StatusCode, r.Body)
	}
	u = lookup(t, s, bob.Token, "alice")
	if len(u.Passkeys) != 1 || !u.Passkeys[0].Recovered || u.Passkeys[0].Approval != nil || u.Passkeys[0].CredentialID != fresh.CredentialID() {
		t.Fatalf("after recovery: %+v", u.Passkeys)
	}
}

// TestGroupMembersCarryBindings: a group's member list gives every member
// device's signature key and binding, so a client can check a whole group
// in one request.
func TestGroupMembersCarryBindings(t *testing.T) {
	s := testutil.NewServer(t)
	alice, pk := s.RegisterMember(t, "alice")
	bob, _ := s.RegisterMember(t, "bob")
	key := bytes.Repeat([]byte{9}, 32)
	if r := s.BindDevice(t, alice.Token, pk, key); r.StatusCode != http.StatusOK {
		t.Fatalf("bind = %d %s", r.StatusCode, r.Body)
	}
	gid := []byte("group-with-bindings")
	if err := (testutil.Feed{St: s.Store}).CreateGroup(t.Context(), gid, alice.DeviceID, bob.DeviceID); err != nil {
		t.Fatal(err)
	}
	r := s.Do(t, http.MethodGet, "/v1/groups/"+base64.RawURLEncoding.EncodeToString(gid), bob.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("get group = %d %s", r.StatusCode, r.Body)
	}
	var g struct {
		Members []struct {
			DeviceID     string           `json:"device_id"`
			SignatureKey string           `json:"signature_key"`
			Binding      *servedAssertion `json:"binding"`
		} `json:"members"`
	}
	r.JSON(t, &g)
	dir := lookup(t, s, bob.Token, "alice")
	for _, m := range g.Members {
		switch m.DeviceID {
		case alice.DeviceID:
			if m.Binding == nil || !bytes.Equal(unb64(t, m.SignatureKey), key) || *m.Binding != *dir.Devices[0].Binding {
				t.Fatalf("alice's member entry %+v, directory %+v", m, dir.Devices[0])
			}
		case bob.DeviceID:
			if m.Binding != nil || m.SignatureKey != "" {
				t.Fatalf("bob's unbound device has a binding: %+v", m)
			}
		}
	}
	if len(g.Members) != 2 {
		t.Fatalf("members %+v", g.Members)
	}
}
