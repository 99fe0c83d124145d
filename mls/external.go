package mls

import (
	"errors"
	"fmt"
)

// Extension types a Delivery Service looks at in a GroupInfo.
const (
	ExtensionRatchetTree uint16 = 0x0002 // ratchet_tree
	ExtensionExternalPub uint16 = 0x0004 // external_pub
)

// ErrNotExternalCommit means a message is not a well-formed external commit
// (RFC 9420 §12.4.3.2); the error says which rule failed.
var ErrNotExternalCommit = errors.New("mls: not an external commit")

// ExternalCommit is what a Delivery Service can check of an external commit
// from its clear PublicMessage: the epoch it joins at, the joiner's new
// leaf (its credential names the joining client) and the leaves it removes
// (at most one: the joiner's own old leaf when it resyncs).
type ExternalCommit struct {
	Epoch   uint64
	Joiner  *LeafNode
	Removed []uint32
}

// ExternalCommit checks that m is an external commit as RFC 9420
// §12.4.3.2 defines it: a PublicMessage commit whose sender is
// new_member_commit, with exactly one inline ExternalInit proposal, at most
// one Remove, otherwise only PreSharedKey proposals, no proposal by
// reference, and an UpdatePath. Signatures are not verified.
func (m *Message) ExternalCommit() (*ExternalCommit, error) {
	if m.WireFormat != WireFormatPublicMessage || m.ContentType != ContentCommit {
		return nil, fmt.Errorf("%w: an external commit is a PublicMessage of content type commit", ErrNotExternalCommit)
	}
	if m.Sender.Type != SenderNewMemberCommit {
		return nil, fmt.Errorf("%w: sender type is %v, not new_member_commit", ErrNotExternalCommit, m.Sender.Type)
	}
	var inits, removes int
	for _, t := range m.ProposalTypes {
		switch t {
		case ProposalExternalInit:
			inits++
		case ProposalRemove:
			removes++
		case ProposalPSK:
		default:
			return nil, fmt.Errorf("%w: proposal type %d is not allowed in an external commit", ErrNotExternalCommit, t)
		}
	}
	switch {
	case inits != 1:
		return nil, fmt.Errorf("%w: %d ExternalInit proposals; exactly one is required", ErrNotExternalCommit, inits)
	case removes > 1:
		return nil, fmt.Errorf("%w: %d Remove proposals; at most one is allowed", ErrNotExternalCommit, removes)
	case m.ProposalRefs > 0:
		return nil, fmt.Errorf("%w: proposals by reference are not allowed", ErrNotExternalCommit)
	case m.PathLeaf == nil:
		return nil, fmt.Errorf("%w: an external commit must carry an UpdatePath", ErrNotExternalCommit)
	}
	return &ExternalCommit{Epoch: m.Epoch, Joiner: m.PathLeaf, Removed: m.Removed}, nil
}

// TreeLeaf is one occupied leaf of a ratchet tree.
type TreeLeaf struct {
	Index uint32   // leaf index
	Leaf  LeafNode // its leaf node
}

// RatchetTree returns the occupied leaves of the GroupInfo's ratchet_tree
// extension, and false when it has none.
func (gi *GroupInfo) RatchetTree() ([]TreeLeaf, bool, error) {
	for _, e := range gi.Extensions {
		if e.Type == ExtensionRatchetTree {
			leaves, err := ParseRatchetTree(e.Data)
			return leaves, true, err
		}
	}
	return nil, false, nil
}

// ParseRatchetTree parses the extension_data of a ratchet_tree extension
// (RFC 9420 §12.4.3.3: optional<Node> ratchet_tree<V>) and returns its
// occupied leaves. Leaves sit at even node indexes, parents at odd ones;
// a node of the wrong kind for its place is malformed.
func ParseRatchetTree(data []byte) ([]TreeLeaf, error) {
	c := cursor{data}
	nodes, err := c.vector()
	if err != nil {
		return nil, field("ratchet_tree", err)
	}
	if err := c.done(); err != nil {
		return nil, field("ratchet_tree", err)
	}
	var leaves []TreeLeaf
	for i := uint32(0); !nodes.empty(); i++ {
		present, err := nodes.optional()
		if err != nil {
			return nil, field("ratchet_tree.node", err)
		}
		if !present {
			continue
		}
		t, err := nodes.u8()
		if err != nil {
			return nil, field("ratchet_tree.node_type", err)
		}
		switch {
		case t == 1 && i%2 == 0: // leaf
			var ln LeafNode
			if err := parseLeafNode(&nodes, &ln); err != nil {
				return nil, field("ratchet_tree.leaf_node", err)
			}
			leaves = append(leaves, TreeLeaf{Index: i / 2, Leaf: ln})
		case t == 2 && i%2 == 1: // parent
			if _, err := nodes.opaque(); err != nil {
				return nil, field("ratchet_tree.parent.encryption_key", err)
			}
			if _, err := nodes.opaque(); err != nil {
				return nil, field("ratchet_tree.parent.parent_hash", err)
			}
			ul, err := nodes.vector()
			if err != nil {
				return nil, field("ratchet_tree.parent.unmerged_leaves", err)
			}
			if len(ul.b)%4 != 0 {
				return nil, fmt.Errorf("ratchet_tree.parent.unmerged_leaves: %w: length %d", ErrMalformed, len(ul.b))
			}
		default:
			return nil, fmt.Errorf("ratchet_tree.node_type: %w: type %d at node %d", ErrMalformed, t, i)
		}
	}
	return leaves, nil
}
