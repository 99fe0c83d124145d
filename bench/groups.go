package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
)

// Group is a group the bench built.
type Group struct {
	ID      []byte
	Path    string // /v1/groups/<base64url id>
	Epoch   uint64
	Members []Account
}

// Receipt is the server's answer to a stored message.
type Receipt struct {
	ID    string `json:"id"`
	Seq   int64  `json:"seq"`
	Kind  string `json:"kind"`
	Epoch uint64 `json:"epoch"`
}

// CreateGroup creates a group with a random 16-byte id; creator is its
// first member, at epoch 0.
func CreateGroup(ctx context.Context, c *Client, creator Account) (*Group, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	enc := base64.RawURLEncoding.EncodeToString(id)
	if _, err := c.Do(ctx, "POST", "/v1/groups", creator.Token, map[string]any{"group_id": enc}, nil); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	return &Group{ID: id, Path: "/v1/groups/" + enc, Members: []Account{creator}}, nil
}

// UploadKeyPackage uploads one real signed key package (suite 1) for the
// account's device.
func UploadKeyPackage(ctx context.Context, c *Client, a Account) error {
	kp := mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(a.DeviceID)})
	if _, err := c.Do(ctx, "POST", "/v1/key-packages", a.Token, map[string]any{"key_packages": [][]byte{kp.Bytes}}, nil); err != nil {
		return fmt.Errorf("upload key package of %s: %w", a.Username, err)
	}
	return nil
}

type claimAnswer struct {
	KeyPackages []struct {
		DeviceID string `json:"device_id"`
		Ref      []byte `json:"ref"`
	} `json:"key_packages"`
}

// AddMembers adds the accounts' devices to g, the way an MLS client does:
// each device uploads a key package, the committer (g's first member)
// claims them and sends commits at the group's current epoch whose Welcome
// addresses the claimed refs, up to perCommit devices per commit.
func AddMembers(ctx context.Context, c *Client, g *Group, add []Account, perCommit, par int) error {
	committer := g.Members[0]
	if err := parallel(len(add), par, func(i int) error { return UploadKeyPackage(ctx, c, add[i]) }); err != nil {
		return err
	}
	refs := make([][]byte, len(add))
	if err := parallel(len(add), par, func(i int) error {
		var ans claimAnswer
		if _, err := c.Do(ctx, "POST", "/v1/users/"+url.PathEscape(add[i].UserID)+"/key-packages/claim", committer.Token,
			map[string]any{"cipher_suite": 1}, &ans); err != nil {
			return fmt.Errorf("claim key package of %s: %w", add[i].Username, err)
		}
		for _, kp := range ans.KeyPackages {
			if kp.DeviceID == add[i].DeviceID {
				refs[i] = kp.Ref
			}
		}
		if refs[i] == nil {
			return fmt.Errorf("claim for %s returned no package of device %s", add[i].Username, add[i].DeviceID)
		}
		return nil
	}); err != nil {
		return err
	}
	for start := 0; start < len(add); start += perCommit {
		end := min(start+perCommit, len(add))
		if err := Commit(ctx, c, g, committer, refs[start:end]); err != nil {
			return err
		}
		g.Members = append(g.Members, add[start:end]...)
	}
	return nil
}

// Commit sends a framed commit at g's current epoch with a Welcome for
// refs (none: an empty commit) and advances g.Epoch.
func Commit(ctx context.Context, c *Client, g *Group, committer Account, refs [][]byte) error {
	body := map[string]any{"commit": mlstest.PrivateMessage(g.ID, g.Epoch, mls.ContentCommit, nil, 256)}
	if len(refs) > 0 {
		body["welcome"] = mlstest.Welcome(refs...)
	}
	var ans struct {
		Epoch uint64 `json:"epoch"`
	}
	if _, err := c.Do(ctx, "POST", g.Path+"/commits", committer.Token, body, &ans); err != nil {
		return fmt.Errorf("commit at epoch %d: %w", g.Epoch, err)
	}
	g.Epoch = ans.Epoch
	return nil
}

// MessageBody encodes the JSON body of a send: an application
// PrivateMessage of g at its epoch, with authenticated data ad and a
// random ciphertext making the whole message about size bytes.
func MessageBody(g *Group, ad []byte, size int) []byte {
	ctLen := max(size-40-len(g.ID)-len(ad), 16)
	msg := mlstest.PrivateMessage(g.ID, g.Epoch, mls.ContentApplication, ad, ctLen)
	raw, _ := json.Marshal(map[string][]byte{"message": msg})
	return raw
}

// Send posts a pre-encoded message body to g and decodes the receipt.
func Send(ctx context.Context, c *Client, g *Group, a Account, body []byte) (Receipt, error) {
	var r Receipt
	_, err := c.Do(ctx, "POST", g.Path+"/messages", a.Token, body, &r)
	return r, err
}

// parallel runs f(0..n-1), par at a time, and returns the first error.
func parallel(n, par int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, max(par, 1))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
