package models

import "time"

// EventKind says what a feed event carries.
type EventKind string

// Event kinds.
const (
	KindApplication EventKind = "application" // MLS application message (PrivateMessage)
	KindProposal    EventKind = "proposal"    // MLS proposal
	KindCommit      EventKind = "commit"      // MLS commit
	KindWelcome     EventKind = "welcome"     // MLS Welcome addressed to one device
	KindNotice      EventKind = "notice"      // server notice (JSON payload), to a group or a device
)

// Event is one stored message or notice. Every event has a place in one
// global sequence (Seq, assigned in commit order), a server-generated UUID
// and a server timestamp that never goes backwards. A group event (GroupID
// set, RecipientDeviceID empty) belongs to the feed of every device that is
// a member at that sequence; a device event (RecipientDeviceID set) belongs
// to that device's feed only.
type Event struct {
	Seq               int64
	ID                string
	ServerTime        time.Time
	Kind              EventKind
	GroupID           []byte
	Epoch             *uint64
	SenderDeviceID    string
	RecipientDeviceID string
	Payload           []byte
	// PrevHash and Hash place a chained event (see Chained) on its group's
	// hash chain (ChainHash); both nil for other events and for events
	// stored before the chain existed.
	PrevHash []byte
	Hash     []byte
}

// Publisher is told about committed changes that live streams must see. It
// is called from the store's after-commit hooks, so only durable events are
// published. Implementations must not block.
type Publisher interface {
	// Publish announces a committed event and the devices whose feeds it joins.
	Publish(e *Event, devices []string)
	// SessionsEnded closes the live streams of revoked sessions at once.
	SessionsEnded(sessionIDs []string)
}

// GroupEpoch is a group a device belongs to and the group's current epoch.
type GroupEpoch struct {
	GroupID []byte
	Epoch   uint64
}

// Resync is what a device needs after its feed cursor fell behind retention:
// the groups it is a member of with their current epochs (to fetch
// GroupInfo and rejoin or wait for a re-add), and the cursor to resume from.
type Resync struct {
	ResumeAfter int64
	Groups      []GroupEpoch
}
