// Package gosdk_test drives the Go SDK (module clients/go) against the real
// server handler: real passkey ceremonies, real HTTP, every response
// validated against openapi.yaml. The SDK module itself depends on nothing
// of the server; these tests live in the server's module because they need
// its test server and MLS test builders.
package gosdk_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/clients/go/passkey"
	"github.com/sovereign-im/sovereign/clients/go/sovereign"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// member is one signed-in device of a test user.
type member struct {
	grant *sovereign.SessionGrant
	auth  *passkey.Authenticator
	s     *sovereign.Session
}

// signUp registers username with a fresh invite through passkey.Register
// and opens a Session on the new device at base: the server itself (every
// answer validated against openapi.yaml) or a proxy in front of it (whose
// misbehaviour is outside the spec by design).
func signUp(t *testing.T, ctx context.Context, srv *testutil.Server, base string, username string) *member {
	t.Helper()
	hc := srv.Client
	if base != srv.URL {
		hc = &http.Client{}
	}
	anon, err := sovereign.NewClientWithResponses(base, sovereign.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := passkey.New(srv.Config.RPOrigins[0], passkey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := passkey.Register(ctx, anon, auth, passkey.Registration{
		InviteCode: srv.Invite(t, models.RoleMember), Username: username, DeviceName: username + "'s bot",
	})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	s, err := sovereign.NewSession(base, g.Token, sovereign.WithHTTP(hc))
	if err != nil {
		t.Fatal(err)
	}
	return &member{grant: g, auth: auth, s: s}
}

func must[T interface{ StatusCode() int }](t *testing.T, what string, r T, err error, want int) T {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.StatusCode() != want {
		t.Fatalf("%s: status %d, want %d", what, r.StatusCode(), want)
	}
	return r
}

// uploadKeyPackages uploads n key packages bound to m's device (the first
// one last-resort).
func uploadKeyPackages(t *testing.T, ctx context.Context, m *member, n int) {
	t.Helper()
	identity := "sovereign:device:" + m.grant.DeviceId.String()
	kps := make([][]byte, n)
	for i := range kps {
		kps[i] = mlstest.KeyPackage(mlstest.Options{Identity: identity, LastResort: i == 0}).Bytes
	}
	zero := int64(0)
	up, err := m.s.UploadKeyPackagesWithResponse(ctx, sovereign.KeyPackageUploadInputBody{KeyPackages: &kps, LastResortIndex: &zero})
	must(t, "upload key packages", up, err, http.StatusCreated)
}

// groupWith creates a group of owner's and adds each member's device
// through a claim and a commit with a Welcome. It returns the group id.
func groupWith(t *testing.T, ctx context.Context, owner *member, others ...*member) []byte {
	t.Helper()
	gid := []byte("go-sdk-" + uuid.NewString())
	gi0 := mlstest.GroupInfo(gid, 0)
	cg, err := owner.s.CreateGroupWithResponse(ctx, sovereign.CreateGroupInputBody{GroupId: sovereign.EncodeGroupID(gid), GroupInfo: &gi0})
	must(t, "create group", cg, err, http.StatusCreated)
	for i, o := range others {
		claim, err := owner.s.ClaimKeyPackagesWithResponse(ctx, o.grant.User.Username, sovereign.KeyPackageClaimInputBody{CipherSuite: 1})
		must(t, "claim", claim, err, http.StatusOK)
		ref := (*claim.JSON200.KeyPackages)[0].Ref
		welcome := mlstest.Welcome(ref)
		gi := mlstest.GroupInfo(gid, uint64(i+1))
		if _, err := owner.s.Commit(ctx, gid, sovereign.CommitInputBody{
			Commit: mlstest.PrivateMessage(gid, uint64(i), mls.ContentCommit, nil, 200), Welcome: &welcome, GroupInfo: &gi,
		}); err != nil {
			t.Fatalf("commit adding %s: %v", o.grant.User.Username, err)
		}
	}
	return gid
}

// next waits for the stream's next event (a bounded wait).
func next(t *testing.T, st *sovereign.Stream, what string) *sovereign.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := st.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

// TestGoSDKFullFlow drives a whole conversation through the Go SDK:
// registration and a second login with the passkey package, key-package
// upload and claim, a group, a commit adding a device with its Welcome
// (Session.Commit), the 409 a stale commit gets, an application message
// sent with Session.Send and received over Stream, acks, and the terminal
// 401 a revoked session gets. MLS payloads are correctly framed messages
// with random ciphertext (the server only reads the framing).
func TestGoSDKFullFlow(t *testing.T) {
	srv := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	bob := signUp(t, ctx, srv, srv.URL, "bob")

	meR, err := bob.s.GetMeWithResponse(ctx)
	must(t, "get me", meR, err, http.StatusOK)
	if meR.JSON200.User.Username != "bob" || meR.JSON200.Device.Id != bob.grant.DeviceId {
		t.Fatalf("me = %+v", meR.JSON200)
	}
	uploadKeyPackages(t, ctx, bob, 3)

	// Bob follows his feed over SSE from the start.
	st := bob.s.Stream(ctx, sovereign.StreamOptions{Transport: sovereign.TransportSSE})
	defer st.Close()

	gid := groupWith(t, ctx, alice, bob)
	w := next(t, st, "welcome")
	if w.Kind != sovereign.EventBodyKindWelcome || w.RecipientDeviceID != bob.grant.DeviceId.String() || w.Epoch != 1 {
		t.Fatalf("bob's first event = %+v", w)
	}

	// A second commit for epoch 0 loses: 409 with the current epoch, not retried.
	_, err = alice.s.Commit(ctx, gid, sovereign.CommitInputBody{Commit: mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200)})
	var ae *sovereign.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.CurrentEpoch == nil || *ae.CurrentEpoch != 1 || ae.Code == "" {
		t.Fatalf("stale commit: %v", err)
	}

	// An application message from Alice reaches Bob byte for byte.
	msg := mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, padded)
	receipt, err := alice.s.Send(ctx, gid, msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	got := next(t, st, "application message")
	if got.Kind != sovereign.EventBodyKindApplication || string(got.Payload) != string(msg) || got.Seq != receipt.Seq ||
		string(got.GroupID) != string(gid) || got.SenderDeviceID != alice.grant.DeviceId.String() {
		t.Fatalf("bob got %+v, want seq %d", got, receipt.Seq)
	}
	if st.Transport() != sovereign.TransportSSE || st.Position() != got.Seq {
		t.Fatalf("transport %s position %d", st.Transport(), st.Position())
	}

	// Bob acks; a long-poll after the ack has nothing waiting.
	st.Ack(got.Seq)
	if err := st.Flush(ctx); err != nil || st.Acked() != got.Seq {
		t.Fatalf("ack: %v, acked %d", err, st.Acked())
	}
	zeroWait := int64(0)
	poll, err := bob.s.SyncFeedWithResponse(ctx, &sovereign.SyncFeedParams{Timeout: &zeroWait})
	must(t, "poll", poll, err, http.StatusOK)
	if poll.JSON200.Events != nil && len(*poll.JSON200.Events) != 0 {
		t.Fatalf("events after the ack: %s", poll.Body)
	}

	// Bob signs in again as the same device with the passkey he holds.
	anon, _ := sovereign.NewClientWithResponses(srv.URL, sovereign.WithHTTPClient(srv.Client))
	again, err := passkey.Login(ctx, anon, bob.auth, passkey.LoginOptions{Username: "bob", DeviceID: bob.grant.DeviceId.String()})
	if err != nil || again.DeviceId != bob.grant.DeviceId || again.Token == bob.grant.Token {
		t.Fatalf("login again: %v %+v", err, again)
	}

	// The first session ends: its stream ends with a terminal 401.
	lo, err := bob.s.LogoutWithResponse(ctx)
	must(t, "logout", lo, err, http.StatusNoContent)
	deadline, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	_, err = st.Next(deadline)
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("stream after logout: %v", err)
	}
	if _, err := st.Next(deadline); !errors.As(err, &ae) {
		t.Fatalf("the terminal error stays: %v", err)
	}
}
