package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// ChainLabel is the domain-separation label that starts every event-chain
// hash input (docs/verification.md).
const ChainLabel = "sovereign event chain v1"

// ChainHashSize is the size of a chain hash (SHA-256).
const ChainHashSize = sha256.Size

// ChainGenesis is the prev_hash of a group's first chained event: 32 zero
// bytes.
var ChainGenesis = make([]byte, ChainHashSize)

// Chained reports whether e belongs to its group's hash chain: a group
// event that every member device at that sequence number receives alike
// (recipient unset). Events addressed to one device (welcomes, device
// notices) are not chained.
func (e *Event) Chained() bool {
	return e.GroupID != nil && e.RecipientDeviceID == ""
}

// ChainHash is the hash of a chained event (docs/verification.md):
//
//	SHA-256( label ‖ 0x00
//	       ‖ u16(len(group_id)) ‖ group_id
//	       ‖ prev_hash (32 bytes)
//	       ‖ u64(seq)
//	       ‖ u8(len(kind)) ‖ kind
//	       ‖ u8(has_epoch) ‖ u64(epoch or 0)
//	       ‖ u16(len(sender_device_id)) ‖ sender_device_id
//	       ‖ u32(len(payload)) ‖ payload )
//
// with every integer big-endian. prev is the previous chained event's hash
// in the group, or ChainGenesis.
func ChainHash(prev []byte, e *Event) []byte {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(ChainLabel))
	h.Write([]byte{0})
	binary.BigEndian.PutUint16(n[:2], uint16(len(e.GroupID)))
	h.Write(n[:2])
	h.Write(e.GroupID)
	h.Write(prev)
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	h.Write([]byte{byte(len(e.Kind))})
	h.Write([]byte(e.Kind))
	var epoch uint64
	has := byte(0)
	if e.Epoch != nil {
		epoch, has = *e.Epoch, 1
	}
	h.Write([]byte{has})
	binary.BigEndian.PutUint64(n[:], epoch)
	h.Write(n[:])
	binary.BigEndian.PutUint16(n[:2], uint16(len(e.SenderDeviceID)))
	h.Write(n[:2])
	h.Write([]byte(e.SenderDeviceID))
	binary.BigEndian.PutUint32(n[:4], uint32(len(e.Payload)))
	h.Write(n[:4])
	h.Write(e.Payload)
	return h.Sum(nil)
}

// VerifyChain checks that events, the chained events of one group in the
// order received, continue the chain from prev (the hash of the last
// event already verified, or nil to trust the first event's prev_hash, as
// a device that joins mid-history must): each event's prev_hash is the
// previous hash and its hash is ChainHash of its content. It returns the
// new head.
func VerifyChain(prev []byte, events []*Event) ([]byte, error) {
	for i, e := range events {
		if len(e.Hash) == 0 {
			return prev, fmt.Errorf("event %d (seq %d) carries no hash", i, e.Seq)
		}
		if prev != nil && !bytes.Equal(e.PrevHash, prev) {
			return prev, fmt.Errorf("event %d (seq %d): prev_hash %x is not the previous hash %x: an event was withheld, reordered or forked", i, e.Seq, e.PrevHash, prev)
		}
		if !bytes.Equal(ChainHash(e.PrevHash, e), e.Hash) {
			return prev, fmt.Errorf("event %d (seq %d): hash does not match its content", i, e.Seq)
		}
		prev = e.Hash
	}
	return prev, nil
}
