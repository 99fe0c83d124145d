package mlstest

import (
	"bytes"
	"testing"

	"github.com/sovereign-im/sovereign/mls"
)

func TestBuildersParse(t *testing.T) {
	gid := []byte("group-1")
	for _, ct := range []mls.ContentType{mls.ContentApplication, mls.ContentProposal, mls.ContentCommit} {
		m, err := mls.ParseMessage(PrivateMessage(gid, 7, ct, []byte("ad"), 300))
		if err != nil {
			t.Fatalf("private %v: %v", ct, err)
		}
		if m.WireFormat != mls.WireFormatPrivateMessage || !bytes.Equal(m.GroupID, gid) || m.Epoch != 7 || m.ContentType != ct {
			t.Fatalf("private %v: got %+v", ct, m)
		}
	}
	for _, total := range []int{60, 100, 64 * 1024, 64*1024 + 1, 20000} {
		b := PrivateMessageSize(gid, 1, mls.ContentApplication, total)
		if len(b) != total {
			t.Fatalf("PrivateMessageSize(%d) = %d bytes", total, len(b))
		}
		if _, err := mls.ParseMessage(b); err != nil {
			t.Fatalf("PrivateMessageSize(%d): %v", total, err)
		}
	}
	r1, r2 := Ref(), Ref()
	w, err := mls.ParseWelcome(Welcome(r1, r2))
	if err != nil {
		t.Fatalf("welcome: %v", err)
	}
	if !w.Addresses(r1) || !w.Addresses(r2) || len(w.Secrets) != 2 {
		t.Fatalf("welcome refs: %+v", w.NewMembers())
	}
	gi, err := mls.ParseGroupInfo(GroupInfo(gid, 9))
	if err != nil {
		t.Fatalf("group info: %v", err)
	}
	if !bytes.Equal(gi.GroupContext.GroupID, gid) || gi.GroupContext.Epoch != 9 {
		t.Fatalf("group info: %+v", gi.GroupContext)
	}
}
