package handlers_test

import (
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestGroupIDAndKeyBounds: a group_id (path or body) is 2 to 340 base64url
// characters and an Idempotency-Key 1 to 255 printable ASCII characters;
// the schema says so with a character-class pattern and length bounds
// (a pattern like {2,340} compiles to a 147 KB program per schema).
func TestGroupIDAndKeyBounds(t *testing.T) {
	s := testutil.NewServer(t)
	a := s.SeedAccount(t, "alice", models.RoleMember)
	for _, tc := range []struct {
		name, id string
		want     int
	}{
		{"one character", "A", 422},
		{"341 characters", strings.Repeat("A", 341), 422},
		{"not base64url", "ab.cd", 422},
		{"padding", "YWJj=", 422},
		{"340 characters", strings.Repeat("A", 340), 201},
		{"two characters", "AA", 201},
	} {
		t.Run("create "+tc.name, func(t *testing.T) {
			r := s.Do(t, "POST", "/v1/groups", a.Token, map[string]any{"group_id": tc.id})
			if r.StatusCode != tc.want {
				t.Fatalf("create %q: %d %s, want %d", tc.id, r.StatusCode, r.Body, tc.want)
			}
			if tc.want != 201 {
				if r := s.Do(t, "GET", "/v1/groups/"+tc.id, a.Token, nil); r.StatusCode != 422 {
					t.Fatalf("get %q: %d %s, want 422", tc.id, r.StatusCode, r.Body)
				}
			}
		})
	}
	gid := []byte("key-bounds-group")
	createGroup(t, s, a, gid)
	msg := mlstest.PrivateMessage(gid, 0, mls.ContentApplication, nil, 64)
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"256 characters", strings.Repeat("k", 256), 422},
		{"a space", "two words", 422},
		{"not ASCII", "clé", 422},
		{"255 characters", strings.Repeat("k", 255), 201},
		{"one character", "k", 201},
	} {
		t.Run("key "+tc.name, func(t *testing.T) {
			if r := send(t, s, a, gid, msg, "Idempotency-Key", tc.key); r.StatusCode != tc.want {
				t.Fatalf("key %q: %d %s, want %d", tc.key, r.StatusCode, r.Body, tc.want)
			}
		})
	}
}
