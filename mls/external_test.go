package mls_test

import (
	"errors"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/mls/mlstest"
)

func TestExternalCommitParse(t *testing.T) {
	gid := []byte("group")
	m, err := mls.ParseMessage(mlstest.ExternalCommit(gid, 7, "sovereign:device:x", 3))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := m.ExternalCommit()
	if err != nil {
		t.Fatal(err)
	}
	if ec.Epoch != 7 || string(ec.Joiner.Credential.Identity) != "sovereign:device:x" || len(ec.Removed) != 1 || ec.Removed[0] != 3 {
		t.Fatalf("%+v", ec)
	}
	// A member commit is not an external commit.
	m, err = mls.ParseMessage(mlstest.PublicCommit(gid, 7, 0, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if m.ProposalRefs != 1 || len(m.Removed) != 1 || m.Removed[0] != 2 {
		t.Fatalf("refs %d removed %v", m.ProposalRefs, m.Removed)
	}
	if _, err := m.ExternalCommit(); !errors.Is(err, mls.ErrNotExternalCommit) {
		t.Fatalf("member commit: %v", err)
	}
	// Two Removes are too many.
	m, _ = mls.ParseMessage(mlstest.ExternalCommit(gid, 7, "sovereign:device:x", 1, 2))
	if _, err := m.ExternalCommit(); !errors.Is(err, mls.ErrNotExternalCommit) {
		t.Fatalf("two removes: %v", err)
	}
	m, _ = mls.ParseMessage(mlstest.RemoveProposal(gid, 7, 4, 4))
	if m.ContentType != mls.ContentProposal || len(m.Removed) != 1 || m.Removed[0] != 4 || m.Sender.Index != 4 {
		t.Fatalf("remove proposal: %+v", m)
	}
}

func TestRatchetTree(t *testing.T) {
	gi, err := mls.ParseGroupInfo(mlstest.GroupInfoWithTree([]byte("g"), 2, "sovereign:device:a", "", "sovereign:device:c"))
	if err != nil {
		t.Fatal(err)
	}
	leaves, ok, err := gi.RatchetTree()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if len(leaves) != 2 || leaves[0].Index != 0 || leaves[1].Index != 2 || string(leaves[1].Leaf.Credential.Identity) != "sovereign:device:c" {
		t.Fatalf("%+v", leaves)
	}
	for _, bad := range [][]byte{{}, {1, 1}, {2, 1, 2}, {3, 1, 2, 0}} {
		if _, err := mls.ParseRatchetTree(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}

// FuzzRatchetTree: the ratchet-tree parser never panics on untrusted bytes
// and what it accepts has leaves in increasing order.
func FuzzRatchetTree(f *testing.F) {
	f.Add(mlstest.RatchetTree("sovereign:device:a", "", "sovereign:device:c"))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaves, err := mls.ParseRatchetTree(b)
		if err != nil {
			return
		}
		for i := 1; i < len(leaves); i++ {
			if leaves[i].Index <= leaves[i-1].Index {
				t.Fatalf("leaves out of order: %d after %d", leaves[i].Index, leaves[i-1].Index)
			}
		}
	})
}

// FuzzExternalCommit: parsing and the external-commit check never panic.
func FuzzExternalCommit(f *testing.F) {
	f.Add(mlstest.ExternalCommit([]byte("g"), 1, "sovereign:device:x", 0))
	f.Add(mlstest.PublicCommit([]byte("g"), 1, 0, 2, 1))
	f.Add(mlstest.RemoveProposal([]byte("g"), 1, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mls.ParseMessage(b)
		if err != nil {
			return
		}
		if ec, err := m.ExternalCommit(); err == nil && (ec.Joiner == nil || len(ec.Removed) > 1) {
			t.Fatalf("accepted %+v", ec)
		}
	})
}
