package gosdk_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/sovereign-im/sovereign/clients/go/sovereign"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/testutil"
)

// padded is the ciphertext length of a test application message whose
// padded content is the smallest bucket (Send refuses others by default).
const padded = mls.MinPaddedBytes + mls.AEADTagBytes

// TestSDKPaddingMatchesTheServer: the SDK's buckets are the server's.
func TestSDKPaddingMatchesTheServer(t *testing.T) {
	for n := 0; n < 1<<17; n++ {
		if sovereign.PaddedLength(n) != mls.PaddedLength(n) || sovereign.IsPaddedLength(n) != mls.IsPaddedLength(n) {
			t.Fatalf("%d: SDK %d/%v, server %d/%v", n, sovereign.PaddedLength(n), sovereign.IsPaddedLength(n), mls.PaddedLength(n), mls.IsPaddedLength(n))
		}
		if p := sovereign.PaddingFor(n); !mls.IsPaddedLength(n + p) {
			t.Fatalf("PaddingFor(%d) = %d", n, p)
		}
	}
}

// TestSendRefusesUnpaddedMessages: against a server run with
// --require-padding, Send refuses an unpadded application message itself
// (ErrUnpadded, nothing sent) and sends a padded one; a session made
// WithUnpaddedMessages sends it and gets the server's 422
// unpadded_message.
func TestSendRefusesUnpaddedMessages(t *testing.T) {
	ctx := context.Background()
	srv := testutil.NewServer(t, func(c *config.Config) { c.Limits.RequirePadding = true })
	alice := signUp(t, ctx, srv, srv.URL, "alice")
	gid := []byte("sdk-padding-group-01")
	if _, err := alice.s.CreateGroupWithResponse(ctx, sovereign.CreateGroupInputBody{GroupId: sovereign.EncodeGroupID(gid)}); err != nil {
		t.Fatal(err)
	}
	unpadded := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 300)
	if _, err := alice.s.Send(ctx, gid, unpadded); !errors.Is(err, sovereign.ErrUnpadded) {
		t.Fatalf("unpadded send: %v", err)
	}
	if _, err := alice.s.Send(ctx, gid, mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 1024+mls.AEADTagBytes)); err != nil {
		t.Fatalf("padded send: %v", err)
	}
	// Proposals are not checked.
	if _, err := alice.s.Send(ctx, gid, mlstest.PrivateMessage(gid, 0, mls.ContentProposal, nil, 77)); err != nil {
		t.Fatalf("proposal: %v", err)
	}
	optOut, err := sovereign.NewSession(srv.URL, alice.grant.Token, sovereign.WithHTTP(srv.Client), sovereign.WithUnpaddedMessages())
	if err != nil {
		t.Fatal(err)
	}
	_, err = optOut.Send(ctx, gid, unpadded)
	var ae *sovereign.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Code != "unpadded_message" {
		t.Fatalf("opted-out unpadded send: %v", err)
	}
}
