package mls

import (
	"bytes"
	"fmt"
)

const versionMLS10 uint16 = 1

// WireFormat is the RFC 9420 §6 MLSMessage wire format.
type WireFormat uint16

// Wire formats.
const (
	WireFormatPublicMessage  WireFormat = 1 // mls_public_message
	WireFormatPrivateMessage WireFormat = 2 // mls_private_message
	WireFormatWelcome        WireFormat = 3 // mls_welcome
	WireFormatGroupInfo      WireFormat = 4 // mls_group_info
	WireFormatKeyPackage     WireFormat = 5 // mls_key_package
)

// String returns the RFC 9420 name (e.g. "mls_private_message") or
// "wire_format(N)".
func (w WireFormat) String() string {
	switch w {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return fmt.Sprintf("wire_format(%d)", uint16(w))
}

// ContentType is the RFC 9420 §6 content type of a framed message.
type ContentType uint8

// Content types.
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

// String returns "application", "proposal", "commit" or "content_type(N)".
func (t ContentType) String() string {
	switch t {
	case ContentApplication:
		return "application"
	case ContentProposal:
		return "proposal"
	case ContentCommit:
		return "commit"
	}
	return fmt.Sprintf("content_type(%d)", uint8(t))
}

// SenderType is the RFC 9420 §6 sender type of a PublicMessage.
type SenderType uint8

// Sender types.
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// String returns "member", "external", "new_member_proposal",
// "new_member_commit" or "sender_type(N)".
func (t SenderType) String() string {
	switch t {
	case SenderMember:
		return "member"
	case SenderExternal:
		return "external"
	case SenderNewMemberProposal:
		return "new_member_proposal"
	case SenderNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("sender_type(%d)", uint8(t))
}

// Sender identifies the sender of a PublicMessage. Index is the leaf index
// for SenderMember and the external sender index for SenderExternal; it is 0
// for the new-member types.
type Sender struct {
	Type  SenderType // sender type
	Index uint32     // leaf index or external sender index
}

// Proposal types (RFC 9420 §17.4) that a PublicMessage proposal or commit may
// carry; other types cannot be framed and are rejected with ErrUnsupported.
const (
	ProposalAdd                    uint16 = 1
	ProposalUpdate                 uint16 = 2
	ProposalRemove                 uint16 = 3
	ProposalPSK                    uint16 = 4
	ProposalReInit                 uint16 = 5
	ProposalExternalInit           uint16 = 6
	ProposalGroupContextExtensions uint16 = 7
)

// Message is the header of a parsed MLSMessage: what a Delivery Service needs
// to route it. Byte slices alias the input. Fields not relevant to the wire
// format are zero.
type Message struct {
	WireFormat WireFormat // always set

	// PublicMessage and PrivateMessage.
	GroupID           []byte      // also set for GroupInfo
	Epoch             uint64      // also set for GroupInfo
	ContentType       ContentType // application, proposal or commit
	AuthenticatedData []byte      // clear authenticated_data

	// PublicMessage only.
	Sender          Sender   // who sent it
	Content         []byte   // encoded body after content_type (application_data<V>, Proposal or Commit)
	ProposalTypes   []uint16 // proposal: its type; commit: types of inline proposals (by-reference ones are omitted)
	Signature       []byte   // FramedContentAuthData.signature, not verified
	ConfirmationTag []byte   // commits only
	MembershipTag   []byte   // member senders only
	// Removed lists the leaf indexes of the Remove proposals: the proposal
	// itself, or a commit's inline ones.
	Removed []uint32
	// ProposalRefs counts a commit's proposals included by reference.
	ProposalRefs int
	// PathLeaf is a commit's UpdatePath leaf node (the committer's new leaf:
	// for an external commit, the joiner's), nil without a path.
	PathLeaf *LeafNode

	// PrivateMessage only: still encrypted.
	EncryptedSenderData []byte // encrypted_sender_data
	Ciphertext          []byte // ciphertext

	// Exactly one of these is set for the corresponding wire format.
	Welcome    *Welcome    // mls_welcome
	GroupInfo  *GroupInfo  // mls_group_info
	KeyPackage *KeyPackage // mls_key_package
}

// CipherSuite returns the cipher suite of a Welcome, GroupInfo or KeyPackage
// message, or 0 for framed messages (which do not carry it).
func (m *Message) CipherSuite() uint16 {
	switch {
	case m.Welcome != nil:
		return m.Welcome.CipherSuite
	case m.GroupInfo != nil:
		return m.GroupInfo.GroupContext.CipherSuite
	case m.KeyPackage != nil:
		return m.KeyPackage.CipherSuite
	}
	return 0
}

// parseHeader checks the MLSMessage version and wire format and returns the
// rest of the message.
func parseHeader(b []byte) (WireFormat, []byte, error) {
	c := cursor{b}
	v, err := c.u16()
	if err != nil {
		return 0, nil, fmt.Errorf("mls: version: %w", err)
	}
	if v != versionMLS10 {
		return 0, nil, fmt.Errorf("mls: %w: %d", ErrUnsupportedVersion, v)
	}
	w, err := c.u16()
	if err != nil {
		return 0, nil, fmt.Errorf("mls: wire_format: %w", err)
	}
	wf := WireFormat(w)
	if wf < WireFormatPublicMessage || wf > WireFormatKeyPackage {
		return 0, nil, fmt.Errorf("%w: %d", ErrUnknownWireFormat, w)
	}
	return wf, c.b, nil
}

// ParseMessage parses a complete MLSMessage of any wire format and rejects
// trailing bytes.
//
//   - PrivateMessage: group_id, epoch, content_type (1..3),
//     authenticated_data, encrypted_sender_data and ciphertext are framed;
//     nothing is copied, so this is cheap enough for every message send.
//   - PublicMessage: the whole FramedContent is parsed, including the
//     Proposal or Commit body (every proposal type of RFC 9420 except custom
//     ones, UpdatePath included), then the signature, the confirmation tag
//     for commits and the membership tag for member senders.
//   - Welcome, GroupInfo, KeyPackage: fully parsed as by ParseWelcome,
//     ParseGroupInfo and ParseKeyPackage.
//
// No signature, MAC or tag is verified.
func ParseMessage(b []byte) (*Message, error) {
	m := new(Message)
	if err := ParseMessageInto(m, b); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseMessageInto is ParseMessage writing into *dst, which is reset first.
// With a dst that does not escape (e.g. a local variable), parsing a
// PrivateMessage allocates nothing. On error *dst is left zeroed.
func ParseMessageInto(dst *Message, b []byte) error {
	*dst = Message{}
	wf, body, err := parseHeader(b)
	if err != nil {
		return err
	}
	m := dst
	m.WireFormat = wf
	c := cursor{body}
	switch wf {
	case WireFormatPrivateMessage:
		err = parsePrivateMessage(&c, m)
	case WireFormatPublicMessage:
		err = parsePublicMessage(&c, m)
	case WireFormatWelcome:
		m.Welcome, err = parseWelcome(&c)
	case WireFormatGroupInfo:
		m.GroupInfo, err = parseGroupInfo(&c)
		if err == nil {
			m.GroupID, m.Epoch = m.GroupInfo.GroupContext.GroupID, m.GroupInfo.GroupContext.Epoch
		}
	case WireFormatKeyPackage:
		m.KeyPackage, err = parseKeyPackage(&c)
	}
	if err == nil {
		err = c.done()
	}
	if err != nil {
		*dst = Message{}
		return fmt.Errorf("mls: %v: %w", wf, err)
	}
	return nil
}

func parseContentType(c *cursor) (ContentType, error) {
	t, err := c.u8()
	if err != nil {
		return 0, field("content_type", err)
	}
	ct := ContentType(t)
	if ct < ContentApplication || ct > ContentCommit {
		return 0, fmt.Errorf("content_type: %w: %d", ErrMalformed, t)
	}
	return ct, nil
}

func parsePrivateMessage(c *cursor, m *Message) error {
	var err error
	if m.GroupID, err = c.opaque(); err != nil {
		return field("group_id", err)
	}
	if m.Epoch, err = c.u64(); err != nil {
		return field("epoch", err)
	}
	if m.ContentType, err = parseContentType(c); err != nil {
		return err
	}
	if m.AuthenticatedData, err = c.opaque(); err != nil {
		return field("authenticated_data", err)
	}
	if m.EncryptedSenderData, err = c.opaque(); err != nil {
		return field("encrypted_sender_data", err)
	}
	if m.Ciphertext, err = c.opaque(); err != nil {
		return field("ciphertext", err)
	}
	return nil
}

func parsePublicMessage(c *cursor, m *Message) error {
	var err error
	if m.GroupID, err = c.opaque(); err != nil {
		return field("group_id", err)
	}
	if m.Epoch, err = c.u64(); err != nil {
		return field("epoch", err)
	}
	st, err := c.u8()
	if err != nil {
		return field("sender_type", err)
	}
	m.Sender.Type = SenderType(st)
	switch m.Sender.Type {
	case SenderMember, SenderExternal:
		if m.Sender.Index, err = c.u32(); err != nil {
			return field("sender index", err)
		}
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		return fmt.Errorf("sender_type: %w: %d", ErrMalformed, st)
	}
	if m.AuthenticatedData, err = c.opaque(); err != nil {
		return field("authenticated_data", err)
	}
	if m.ContentType, err = parseContentType(c); err != nil {
		return err
	}
	start := c.b
	switch m.ContentType {
	case ContentApplication:
		if _, err = c.opaque(); err != nil {
			return field("application_data", err)
		}
	case ContentProposal:
		t, removed, err := skipProposal(c)
		if err != nil {
			return field("proposal", err)
		}
		m.ProposalTypes = []uint16{t}
		if t == ProposalRemove {
			m.Removed = []uint32{removed}
		}
	case ContentCommit:
		if err = skipCommit(c, m); err != nil {
			return field("commit", err)
		}
	}
	m.Content = start[: len(start)-len(c.b) : len(start)-len(c.b)]
	if m.Signature, err = c.opaque(); err != nil {
		return field("signature", err)
	}
	if m.ContentType == ContentCommit {
		if m.ConfirmationTag, err = c.opaque(); err != nil {
			return field("confirmation_tag", err)
		}
	}
	if m.Sender.Type == SenderMember {
		if m.MembershipTag, err = c.opaque(); err != nil {
			return field("membership_tag", err)
		}
	}
	return nil
}

// skipProposal validates the framing of a Proposal and returns its type
// and, for a Remove, the removed leaf index.
func skipProposal(c *cursor) (uint16, uint32, error) {
	t, err := c.u16()
	if err != nil {
		return 0, 0, field("proposal_type", err)
	}
	var removed uint32
	switch t {
	case ProposalAdd:
		_, err = parseKeyPackage(c)
		err = field("add.key_package", err)
	case ProposalUpdate:
		var ln LeafNode
		err = field("update.leaf_node", parseLeafNode(c, &ln))
		if err == nil && ln.Source != SourceUpdate {
			err = fmt.Errorf("update.leaf_node: %w: source %v", ErrMalformed, ln.Source)
		}
	case ProposalRemove:
		removed, err = c.u32()
		err = field("remove.removed", err)
	case ProposalPSK:
		err = field("psk", skipPreSharedKeyID(c))
	case ProposalReInit:
		if _, err = c.opaque(); err != nil {
			return 0, 0, field("reinit.group_id", err)
		}
		if _, err = c.u16(); err != nil {
			return 0, 0, field("reinit.version", err)
		}
		if _, err = c.u16(); err != nil {
			return 0, 0, field("reinit.cipher_suite", err)
		}
		_, err = parseExtensions(c)
		err = field("reinit.extensions", err)
	case ProposalExternalInit:
		_, err = c.opaque()
		err = field("external_init.kem_output", err)
	case ProposalGroupContextExtensions:
		_, err = parseExtensions(c)
		err = field("group_context_extensions", err)
	default:
		// Custom proposals have no length prefix: the message cannot be framed.
		return 0, 0, fmt.Errorf("proposal_type: %w: %d", ErrUnsupported, t)
	}
	return t, removed, err
}

func skipPreSharedKeyID(c *cursor) error {
	t, err := c.u8()
	if err != nil {
		return field("psktype", err)
	}
	switch t {
	case 1: // external
		if _, err = c.opaque(); err != nil {
			return field("psk_id", err)
		}
	case 2: // resumption
		u, err := c.u8()
		if err != nil {
			return field("usage", err)
		}
		if u < 1 || u > 3 {
			return fmt.Errorf("usage: %w: %d", ErrMalformed, u)
		}
		if _, err = c.opaque(); err != nil {
			return field("psk_group_id", err)
		}
		if _, err = c.u64(); err != nil {
			return field("psk_epoch", err)
		}
	default:
		return fmt.Errorf("psktype: %w: %d", ErrMalformed, t)
	}
	_, err = c.opaque()
	return field("psk_nonce", err)
}

// skipCommit validates the framing of a Commit and records in m the types
// of its inline proposals, the leaves its inline Removes remove, how many
// proposals it includes by reference and its UpdatePath's leaf node.
func skipCommit(c *cursor, m *Message) error {
	v, err := c.vector()
	if err != nil {
		return field("proposals", err)
	}
	for !v.empty() {
		t, err := v.u8()
		if err != nil {
			return field("proposals", err)
		}
		switch t {
		case 1: // proposal
			pt, removed, err := skipProposal(&v)
			if err != nil {
				return field("proposals", err)
			}
			m.ProposalTypes = append(m.ProposalTypes, pt)
			if pt == ProposalRemove {
				m.Removed = append(m.Removed, removed)
			}
		case 2: // reference
			if _, err = v.opaque(); err != nil {
				return field("proposals.reference", err)
			}
			m.ProposalRefs++
		default:
			return fmt.Errorf("proposals: %w: ProposalOrRefType %d", ErrMalformed, t)
		}
	}
	present, err := c.optional()
	if err != nil {
		return field("path", err)
	}
	if !present {
		return nil
	}
	ln := new(LeafNode)
	if err = parseLeafNode(c, ln); err != nil {
		return field("path.leaf_node", err)
	}
	if ln.Source != SourceCommit {
		return fmt.Errorf("path.leaf_node: %w: source %v", ErrMalformed, ln.Source)
	}
	nodes, err := c.vector()
	if err != nil {
		return field("path.nodes", err)
	}
	for !nodes.empty() {
		if _, err = nodes.opaque(); err != nil {
			return field("path.nodes.encryption_key", err)
		}
		cts, err := nodes.vector()
		if err != nil {
			return field("path.nodes.encrypted_path_secret", err)
		}
		for !cts.empty() {
			if _, _, err = parseHPKECiphertext(&cts); err != nil {
				return field("path.nodes.encrypted_path_secret", err)
			}
		}
	}
	m.PathLeaf = ln
	return nil
}

func parseHPKECiphertext(c *cursor) (kemOutput, ciphertext []byte, err error) {
	if kemOutput, err = c.opaque(); err != nil {
		return nil, nil, field("kem_output", err)
	}
	if ciphertext, err = c.opaque(); err != nil {
		return nil, nil, field("ciphertext", err)
	}
	return kemOutput, ciphertext, nil
}

// EncryptedGroupSecrets is one recipient entry of a Welcome. All slices alias
// the input.
type EncryptedGroupSecrets struct {
	NewMember  []byte // KeyPackageRef of the recipient's key package
	KEMOutput  []byte // HPKECiphertext.kem_output
	Ciphertext []byte // HPKECiphertext.ciphertext
}

// Welcome is a parsed RFC 9420 §12.4.3.1 Welcome. All slices alias the input.
type Welcome struct {
	CipherSuite        uint16                  // any value; see SupportedSuite
	Secrets            []EncryptedGroupSecrets // one entry per new member
	EncryptedGroupInfo []byte                  // still encrypted
}

// NewMembers returns the KeyPackageRefs the Welcome is addressed to.
func (w *Welcome) NewMembers() [][]byte {
	out := make([][]byte, len(w.Secrets))
	for i, s := range w.Secrets {
		out[i] = s.NewMember
	}
	return out
}

// Addresses reports whether the Welcome has an entry for KeyPackageRef ref.
func (w *Welcome) Addresses(ref []byte) bool {
	for _, s := range w.Secrets {
		if bytes.Equal(s.NewMember, ref) {
			return true
		}
	}
	return false
}

// ParseWelcome parses a complete MLSMessage carrying a Welcome. The cipher
// suite is read but not required to be supported.
func ParseWelcome(msg []byte) (*Welcome, error) {
	wf, body, err := parseHeader(msg)
	if err != nil {
		return nil, err
	}
	if wf != WireFormatWelcome {
		return nil, fmt.Errorf("%w: got %v, want %v", ErrWrongWireFormat, wf, WireFormatWelcome)
	}
	c := cursor{body}
	w, err := parseWelcome(&c)
	if err == nil {
		err = c.done()
	}
	if err != nil {
		return nil, fmt.Errorf("mls: welcome: %w", err)
	}
	return w, nil
}

func parseWelcome(c *cursor) (*Welcome, error) {
	w := &Welcome{}
	var err error
	if w.CipherSuite, err = c.u16(); err != nil {
		return nil, field("cipher_suite", err)
	}
	v, err := c.vector()
	if err != nil {
		return nil, field("secrets", err)
	}
	for !v.empty() {
		var s EncryptedGroupSecrets
		if s.NewMember, err = v.opaque(); err != nil {
			return nil, field("secrets.new_member", err)
		}
		if s.KEMOutput, s.Ciphertext, err = parseHPKECiphertext(&v); err != nil {
			return nil, field("secrets.encrypted_group_secrets", err)
		}
		w.Secrets = append(w.Secrets, s)
	}
	if w.EncryptedGroupInfo, err = c.opaque(); err != nil {
		return nil, field("encrypted_group_info", err)
	}
	return w, nil
}

// GroupContext is the RFC 9420 §8.1 GroupContext. Slices alias the input.
type GroupContext struct {
	Version                 uint16      // always 1 (mls10)
	CipherSuite             uint16      // any value; see SupportedSuite
	GroupID                 []byte      // group id
	Epoch                   uint64      // epoch
	TreeHash                []byte      // tree_hash
	ConfirmedTranscriptHash []byte      // confirmed_transcript_hash
	Extensions              []Extension // group context extensions
}

// GroupInfo is a parsed RFC 9420 §12.4.3 GroupInfo. Slices alias the input.
type GroupInfo struct {
	GroupContext    GroupContext // the group's context at this epoch
	Extensions      []Extension  // GroupInfo extensions (ratchet_tree, external_pub, ...)
	ConfirmationTag []byte       // MAC, not verified
	Signer          uint32       // leaf index of the signer
	Signature       []byte       // not verified
}

// ParseGroupInfo parses a complete MLSMessage carrying a GroupInfo. The group
// context version must be mls10; the cipher suite is read but not required
// to be supported. The signature is not verified.
func ParseGroupInfo(msg []byte) (*GroupInfo, error) {
	wf, body, err := parseHeader(msg)
	if err != nil {
		return nil, err
	}
	if wf != WireFormatGroupInfo {
		return nil, fmt.Errorf("%w: got %v, want %v", ErrWrongWireFormat, wf, WireFormatGroupInfo)
	}
	c := cursor{body}
	gi, err := parseGroupInfo(&c)
	if err == nil {
		err = c.done()
	}
	if err != nil {
		return nil, fmt.Errorf("mls: group info: %w", err)
	}
	return gi, nil
}

func parseGroupInfo(c *cursor) (*GroupInfo, error) {
	gi := &GroupInfo{}
	gc := &gi.GroupContext
	var err error
	if gc.Version, err = c.u16(); err != nil {
		return nil, field("group_context.version", err)
	}
	if gc.Version != versionMLS10 {
		return nil, fmt.Errorf("group_context.version: %w: %d", ErrUnsupportedVersion, gc.Version)
	}
	if gc.CipherSuite, err = c.u16(); err != nil {
		return nil, field("group_context.cipher_suite", err)
	}
	if gc.GroupID, err = c.opaque(); err != nil {
		return nil, field("group_context.group_id", err)
	}
	if gc.Epoch, err = c.u64(); err != nil {
		return nil, field("group_context.epoch", err)
	}
	if gc.TreeHash, err = c.opaque(); err != nil {
		return nil, field("group_context.tree_hash", err)
	}
	if gc.ConfirmedTranscriptHash, err = c.opaque(); err != nil {
		return nil, field("group_context.confirmed_transcript_hash", err)
	}
	if gc.Extensions, err = parseExtensions(c); err != nil {
		return nil, field("group_context.extensions", err)
	}
	if gi.Extensions, err = parseExtensions(c); err != nil {
		return nil, field("extensions", err)
	}
	if gi.ConfirmationTag, err = c.opaque(); err != nil {
		return nil, field("confirmation_tag", err)
	}
	if gi.Signer, err = c.u32(); err != nil {
		return nil, field("signer", err)
	}
	if gi.Signature, err = c.opaque(); err != nil {
		return nil, field("signature", err)
	}
	return gi, nil
}
