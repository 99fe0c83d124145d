package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	sovereign "github.com/sovereign-im/sovereign/clients/go"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// register signs a user up through the generated client: begin, a real
// WebAuthn attestation from a virtual authenticator, finish.
func register(t *testing.T, ctx context.Context, s *testutil.Server, c *sovereign.ClientWithResponses, username string) *sovereign.SessionGrant {
	t.Helper()
	invite := s.Invite(t, models.RoleMember)
	begin, err := c.RegisterBeginWithResponse(ctx, sovereign.RegisterBeginInputBody{InviteCode: &invite, Username: username, DisplayName: "Test " + username})
	if err != nil || begin.JSON200 == nil {
		t.Fatalf("register begin: %v %d %s", err, begin.StatusCode(), begin.Body)
	}
	var raw struct {
		Options json.RawMessage `json:"options"`
	}
	if err := json.Unmarshal(begin.Body, &raw); err != nil {
		t.Fatal(err)
	}
	pk := s.NewPasskey()
	var cred sovereign.AttestationCredential
	if err := json.Unmarshal(pk.Create(t, raw.Options), &cred); err != nil {
		t.Fatalf("attestation into the generated type: %v", err)
	}
	fin, err := c.RegisterFinishWithResponse(ctx, sovereign.RegisterFinishInputBody{
		CeremonyId: begin.JSON200.CeremonyId, Credential: cred, DeviceName: username + "'s device",
	})
	if err != nil || fin.JSON201 == nil {
		t.Fatalf("register finish: %v %d %s", err, fin.StatusCode(), fin.Body)
	}
	return fin.JSON201
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

// TestGoClientFullFlow drives a whole conversation through the generated Go
// client against the real handler: registration with passkeys, key-package
// upload and claim, a group, a commit adding a device with its Welcome, an
// application message received over the SSE stream helper, acks, and the
// 409 a stale commit gets. MLS payloads are correctly framed messages with
// random ciphertext (the server only reads the framing).
func TestGoClientFullFlow(t *testing.T) {
	s := testutil.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anon, err := sovereign.NewClientWithResponses(s.URL, sovereign.WithHTTPClient(s.Client))
	if err != nil {
		t.Fatal(err)
	}
	alice := register(t, ctx, s, anon, "alice")
	bob := register(t, ctx, s, anon, "bob")
	ac, _ := sovereign.NewClientWithResponses(s.URL, sovereign.WithHTTPClient(s.Client), sovereign.WithRequestEditorFn(sovereign.Bearer(alice.Token)))
	bc, _ := sovereign.NewClientWithResponses(s.URL, sovereign.WithHTTPClient(s.Client), sovereign.WithRequestEditorFn(sovereign.Bearer(bob.Token)))

	meR, err := bc.GetMeWithResponse(ctx)
	must(t, "get me", meR, err, http.StatusOK)
	if meR.JSON200.User.Username != "bob" || meR.JSON200.Device.Id != bob.DeviceId {
		t.Fatalf("me = %+v", meR.JSON200)
	}

	// Bob uploads key packages bound to his device (one last resort).
	identity := "sovereign:device:" + bob.DeviceId.String()
	kps := [][]byte{}
	for i := 0; i < 3; i++ {
		kps = append(kps, mlstest.KeyPackage(mlstest.Options{Identity: identity, LastResort: i == 0}).Bytes)
	}
	zero := int64(0)
	up, err := bc.UploadKeyPackagesWithResponse(ctx, sovereign.KeyPackageUploadInputBody{KeyPackages: &kps, LastResortIndex: &zero})
	must(t, "upload key packages", up, err, http.StatusCreated)

	// Alice creates a group and claims one of Bob's packages.
	gid := []byte("go-client-flow-" + uuid.NewString())
	gidB64 := base64.RawURLEncoding.EncodeToString(gid)
	gi0 := mlstest.GroupInfo(gid, 0)
	cg, err := ac.CreateGroupWithResponse(ctx, sovereign.CreateGroupInputBody{GroupId: gidB64, GroupInfo: &gi0})
	must(t, "create group", cg, err, http.StatusCreated)
	claim, err := ac.ClaimKeyPackagesWithResponse(ctx, "bob", sovereign.KeyPackageClaimInputBody{CipherSuite: 1})
	must(t, "claim", claim, err, http.StatusOK)
	if claim.JSON200.KeyPackages == nil || len(*claim.JSON200.KeyPackages) != 1 {
		t.Fatalf("claim = %s", claim.Body)
	}
	claimed := (*claim.JSON200.KeyPackages)[0]
	if claimed.DeviceId != bob.DeviceId || claimed.LastResort {
		t.Fatalf("claimed %+v", claimed)
	}
	kp, err := mls.ParseKeyPackage(claimed.KeyPackage)
	if err != nil || string(kp.Ref()) != string(claimed.Ref) {
		t.Fatalf("claimed package does not parse to its ref: %v", err)
	}

	// Bob follows his feed over SSE from the start.
	stream, err := sovereign.OpenStream(ctx, nil, s.URL, bob.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	events := make(chan sovereign.EventBody, 16)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			if ev.Event != "message" {
				continue
			}
			var fe sovereign.EventBody
			if err := json.Unmarshal([]byte(ev.Data), &fe); err != nil {
				t.Errorf("feed event: %v", err)
				return
			}
			events <- fe
		}
	}()
	next := func(what string) sovereign.EventBody {
		t.Helper()
		select {
		case fe, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before %s", what)
			}
			return fe
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s within 5 s", what)
		}
		panic("unreachable")
	}

	// Alice commits the add with a Welcome for Bob's claimed ref.
	commit := mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200)
	welcome := mlstest.Welcome(claimed.Ref)
	gi1 := mlstest.GroupInfo(gid, 1)
	key := uuid.NewString()
	cr, err := ac.CommitGroupWithResponse(ctx, gidB64, &sovereign.CommitGroupParams{IdempotencyKey: &key},
		sovereign.CommitInputBody{Commit: commit, Welcome: &welcome, GroupInfo: &gi1})
	must(t, "commit", cr, err, http.StatusCreated)
	if cr.JSON201.Epoch != 1 || cr.JSON201.AddedDevices == nil || len(*cr.JSON201.AddedDevices) != 1 || (*cr.JSON201.AddedDevices)[0] != bob.DeviceId.String() {
		t.Fatalf("commit = %s", cr.Body)
	}
	w := next("welcome")
	if w.Kind != "welcome" || string(w.Payload) != string(welcome) {
		t.Fatalf("bob's first event = %+v", w)
	}

	// A second commit for epoch 0 loses: 409 with the current epoch.
	stale, err := ac.CommitGroupWithResponse(ctx, gidB64, nil, sovereign.CommitInputBody{Commit: mlstest.PrivateMessage(gid, 0, mls.ContentCommit, nil, 200)})
	must(t, "stale commit", stale, err, http.StatusConflict)
	if p := stale.ApplicationproblemJSON409; p == nil || p.CurrentEpoch == nil || *p.CurrentEpoch != 1 {
		t.Fatalf("409 problem = %s", stale.Body)
	}

	// An application message from Alice reaches Bob byte for byte.
	msg := mlstest.PrivateMessage(gid, 1, mls.ContentApplication, nil, 300)
	sent, err := ac.SendMessageWithResponse(ctx, gidB64, nil, sovereign.SendMessageInputBody{Message: msg})
	must(t, "send", sent, err, http.StatusCreated)
	got := next("application message")
	if got.Kind != "application" || string(got.Payload) != string(msg) || got.Seq != sent.JSON201.Seq || got.GroupId == nil || *got.GroupId != gidB64 {
		t.Fatalf("bob got %+v, want seq %d", got, sent.JSON201.Seq)
	}
	if got.SenderDeviceId == nil || *got.SenderDeviceId != alice.DeviceId.String() {
		t.Fatalf("sender = %v", got.SenderDeviceId)
	}

	// Bob acks; a long-poll after the ack has nothing waiting.
	ack, err := bc.AckFeedWithResponse(ctx, sovereign.AckInputBody{Seq: got.Seq})
	must(t, "ack", ack, err, http.StatusOK)
	if ack.JSON200.AckedSeq != got.Seq {
		t.Fatalf("acked %d", ack.JSON200.AckedSeq)
	}
	zeroWait := int64(0)
	poll, err := bc.SyncFeedWithResponse(ctx, &sovereign.SyncFeedParams{Timeout: &zeroWait})
	must(t, "poll", poll, err, http.StatusOK)
	if poll.JSON200.Events != nil && len(*poll.JSON200.Events) != 0 {
		t.Fatalf("events after the ack: %s", poll.Body)
	}

	// A revoked token cannot open a stream: the helper returns the problem.
	lo, err := bc.LogoutWithResponse(ctx)
	must(t, "logout", lo, err, http.StatusNoContent)
	_, err = sovereign.OpenStream(ctx, nil, s.URL, bob.Token, 0)
	var apiErr *sovereign.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("stream with a revoked token: %v", err)
	}
}
