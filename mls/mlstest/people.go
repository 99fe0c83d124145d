package mlstest

import (
	"encoding/binary"

	"github.com/sovereign-im/sovereign/mls"
)

// LeafNode frames a LeafNode whose BasicCredential carries identity, with
// the given source (key_package sources get a wide lifetime, commit sources
// a random parent hash), random keys and a random signature.
func LeafNode(identity string, source mls.LeafNodeSource) []byte {
	b := AppendOpaque(nil, random(32)) // encryption_key
	b = AppendOpaque(b, random(32))    // signature_key
	b = binary.BigEndian.AppendUint16(b, uint16(mls.CredentialBasic))
	b = AppendOpaque(b, []byte(identity))
	// capabilities: versions, cipher_suites, extensions, proposals, credentials
	b = AppendOpaque(b, []byte{0, 1})
	b = AppendOpaque(b, []byte{0, 1})
	b = AppendOpaque(b, nil)
	b = AppendOpaque(b, nil)
	b = AppendOpaque(b, []byte{0, 1})
	b = append(b, byte(source))
	switch source {
	case mls.SourceKeyPackage:
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 1<<40)
	case mls.SourceCommit:
		b = AppendOpaque(b, random(32))
	}
	b = AppendOpaque(b, nil)        // extensions
	b = AppendOpaque(b, random(64)) // signature
	return b
}

// ExternalCommit frames an external commit (PublicMessage, sender
// new_member_commit) for groupID at epoch: an ExternalInit proposal, a
// Remove of each leaf in removes, and an UpdatePath whose leaf carries
// identity. Signature and confirmation tag are random.
func ExternalCommit(groupID []byte, epoch uint64, identity string, removes ...uint32) []byte {
	var props []byte
	props = append(props, 1) // proposal
	props = binary.BigEndian.AppendUint16(props, mls.ProposalExternalInit)
	props = AppendOpaque(props, random(32))
	for _, r := range removes {
		props = append(props, 1)
		props = binary.BigEndian.AppendUint16(props, mls.ProposalRemove)
		props = binary.BigEndian.AppendUint32(props, r)
	}
	b := header(mls.WireFormatPublicMessage)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(mls.SenderNewMemberCommit))
	b = AppendOpaque(b, nil) // authenticated_data
	b = append(b, byte(mls.ContentCommit))
	b = AppendOpaque(b, props)
	b = append(b, 1) // path present
	b = append(b, LeafNode(identity, mls.SourceCommit)...)
	b = AppendOpaque(b, nil)        // path nodes
	b = AppendOpaque(b, random(64)) // signature
	b = AppendOpaque(b, random(32)) // confirmation_tag
	return b
}

// PublicCommit frames a member's PublicMessage commit at epoch from leaf
// sender, with inline Removes of the given leaves and refs proposals by
// reference, no path.
func PublicCommit(groupID []byte, epoch uint64, sender uint32, refs int, removes ...uint32) []byte {
	var props []byte
	for i := 0; i < refs; i++ {
		props = append(props, 2)
		props = AppendOpaque(props, random(32))
	}
	for _, r := range removes {
		props = append(props, 1)
		props = binary.BigEndian.AppendUint16(props, mls.ProposalRemove)
		props = binary.BigEndian.AppendUint32(props, r)
	}
	b := header(mls.WireFormatPublicMessage)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(mls.SenderMember))
	b = binary.BigEndian.AppendUint32(b, sender)
	b = AppendOpaque(b, nil)
	b = append(b, byte(mls.ContentCommit))
	b = AppendOpaque(b, props)
	b = append(b, 0)                // no path
	b = AppendOpaque(b, random(64)) // signature
	b = AppendOpaque(b, random(32)) // confirmation_tag
	b = AppendOpaque(b, random(32)) // membership_tag
	return b
}

// RemoveProposal frames a member's PublicMessage Remove proposal at epoch
// from leaf sender removing leaf removed (sender == removed: leaving).
func RemoveProposal(groupID []byte, epoch uint64, sender, removed uint32) []byte {
	b := header(mls.WireFormatPublicMessage)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = append(b, byte(mls.SenderMember))
	b = binary.BigEndian.AppendUint32(b, sender)
	b = AppendOpaque(b, nil)
	b = append(b, byte(mls.ContentProposal))
	b = binary.BigEndian.AppendUint16(b, mls.ProposalRemove)
	b = binary.BigEndian.AppendUint32(b, removed)
	b = AppendOpaque(b, random(64)) // signature
	b = AppendOpaque(b, random(32)) // membership_tag
	return b
}

// RatchetTree frames ratchet_tree extension data with one leaf per
// identity (leaf i at node 2i; "" leaves a blank leaf) and blank parents.
func RatchetTree(identities ...string) []byte {
	var nodes []byte
	for i, id := range identities {
		if i > 0 {
			nodes = append(nodes, 0) // blank parent
		}
		if id == "" {
			nodes = append(nodes, 0)
			continue
		}
		nodes = append(nodes, 1, 1) // present, leaf
		nodes = append(nodes, LeafNode(id, mls.SourceKeyPackage)...)
	}
	return AppendOpaque(nil, nodes)
}

// GroupInfoWithTree frames a GroupInfo like GroupInfo, with a ratchet_tree
// extension holding the given identities (see RatchetTree) and an
// external_pub extension.
func GroupInfoWithTree(groupID []byte, epoch uint64, identities ...string) []byte {
	var exts []byte
	exts = binary.BigEndian.AppendUint16(exts, mls.ExtensionRatchetTree)
	exts = AppendOpaque(exts, RatchetTree(identities...))
	exts = binary.BigEndian.AppendUint16(exts, mls.ExtensionExternalPub)
	exts = AppendOpaque(exts, AppendOpaque(nil, random(32)))
	b := header(mls.WireFormatGroupInfo)
	b = binary.BigEndian.AppendUint16(b, versionMLS10)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = AppendOpaque(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = AppendOpaque(b, random(32))
	b = AppendOpaque(b, random(32))
	b = AppendOpaque(b, nil)
	b = AppendOpaque(b, exts)
	b = AppendOpaque(b, random(32))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = AppendOpaque(b, random(64))
	return b
}
