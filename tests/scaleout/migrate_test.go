package scaleout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/clients/go/passkey"
	"github.com/sovereign-im/sovereign/clients/go/sovereign"
	"github.com/sovereign-im/sovereign/testutil/testdb"
)

// TestMigrateSQLiteToPostgres moves a server up: a SQLite server with two
// accounts, a group and twenty messages, of which the reader has
// acknowledged ten; the server stops; `sovereign migrate` copies it into
// a new PostgreSQL database (and refuses to copy into it a second time);
// a server on PostgreSQL then lets the same passkey sign in, the reader's
// old session resumes its cursor and gets exactly the ten messages it had
// not acknowledged, and a new message takes a seq after every old one.
func TestMigrateSQLiteToPostgres(t *testing.T) {
	url := testdb.Empty(t)
	bin := binary(t)
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sq, err := bench.Start(ctx, bin, dataDir, serverFlags...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !sq.Exited() {
			_ = sq.Kill()
		}
	})
	origin := "http://localhost" + sq.URL[strings.LastIndex(sq.URL, ":"):]
	code, err := bench.Invite(bin, dataDir, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := passkey.New(origin, passkey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := sovereign.NewClientWithResponses(sq.URL)
	if err != nil {
		t.Fatal(err)
	}
	grant, err := passkey.Register(ctx, sdk, auth, passkey.Registration{InviteCode: code, Username: "alice", DeviceName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	alice := bench.Account{UserID: grant.UserId.String(), DeviceID: grant.DeviceId.String(), Token: grant.Token, Username: "alice"}
	rp, err := bench.RelyingParty(origin)
	if err != nil {
		t.Fatal(err)
	}
	c := bench.NewClient(sq.URL, 8)
	bob, err := bench.Register(ctx, c, rp, code, "bob")
	if err != nil {
		t.Fatal(err)
	}
	g, err := bench.CreateGroup(ctx, c, alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.AddMembers(ctx, c, g, []bench.Account{bob}, 1, 1); err != nil {
		t.Fatal(err)
	}
	var sent []int64
	for range 20 {
		r, err := bench.Send(ctx, c, g, alice, bench.MessageBody(g, nil, 200))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, r.Seq)
	}
	before, err := pollEvents(ctx, c, bob.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := tailFrom(before.seqs, sent[0]); fmt.Sprint(got) != fmt.Sprint(sent) {
		t.Fatalf("bob's feed on SQLite ends %v, want %v", got, sent)
	}
	if _, err := c.Do(ctx, "POST", "/v1/sync/ack", bob.Token, map[string]int64{"seq": sent[9]}, nil); err != nil {
		t.Fatal(err)
	}
	if err := sq.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the SQLite server: %v", err)
	}

	out, err := exec.Command(bin, "migrate", "--from", "sqlite:"+dataDir, "--to", url).CombinedOutput()
	if err != nil {
		t.Fatalf("sovereign migrate: %v\n%s", err, out)
	}
	t.Logf("sovereign migrate:\n%s", out)
	for _, want := range []string{"users", "credentials", "sessions", "devices", "groups", "group_members", "events", "device_cursors", "audit_log", "server_secrets", "every count verified"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("migrate output does not name %q", want)
		}
	}
	again := exec.Command(bin, "migrate", "--from", "sqlite:"+dataDir, "--to", url)
	out2, err := again.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out2), "not empty") {
		t.Fatalf("a second migrate into the same database: %v %s, want exit 2 saying it is not empty", err, out2)
	}

	pg, err := bench.Start(ctx, bin, filepath.Join(t.TempDir(), "pgdata"), append(append([]string{}, serverFlags...), "--database", url, "--rp-origins", origin)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Kill() })
	pc := bench.NewClient(pg.URL, 8)
	psdk, err := sovereign.NewClientWithResponses(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	login, err := passkey.Login(ctx, psdk, auth, passkey.LoginOptions{Username: "alice", DeviceID: alice.DeviceID})
	if err != nil {
		t.Fatalf("the same passkey signs in on PostgreSQL: %v", err)
	}
	if login.UserId != openapi_types.UUID(grant.UserId) || login.DeviceId != grant.DeviceId {
		t.Fatalf("signed in as user %s device %s, want %s %s", login.UserId, login.DeviceId, grant.UserId, grant.DeviceId)
	}
	// Bob's old session, no cursor given: the feed resumes after his ack.
	var resumed struct {
		Events []feedEvent `json:"events"`
		Next   int64       `json:"next"`
	}
	if _, err := pc.Do(ctx, "GET", "/v1/sync?limit=100", bob.Token, nil, &resumed); err != nil {
		t.Fatalf("bob resumes on PostgreSQL: %v", err)
	}
	var got []int64
	for _, e := range resumed.Events {
		got = append(got, e.Seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(sent[10:]) {
		t.Fatalf("bob resumed with %v, want the ten unacknowledged %v", got, sent[10:])
	}
	g2 := *g
	r, err := bench.Send(ctx, pc, &g2, bench.Account{Token: login.Token}, bench.MessageBody(g, nil, 200))
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq <= sent[len(sent)-1] {
		t.Fatalf("first message on PostgreSQL got seq %d, not after the old %d", r.Seq, sent[len(sent)-1])
	}
	next, err := pollEvents(ctx, pc, bob.Token, resumed.Next)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(next.seqs) != fmt.Sprint([]int64{r.Seq}) {
		t.Fatalf("bob's next read %v, want [%d]", next.seqs, r.Seq)
	}
}

// tailFrom is the part of seqs from the first one >= from.
func tailFrom(seqs []int64, from int64) []int64 {
	for i, s := range seqs {
		if s >= from {
			return seqs[i:]
		}
	}
	return nil
}
