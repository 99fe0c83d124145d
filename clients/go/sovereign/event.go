package sovereign

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event is one event of the device's feed, decoded from the wire's
// EventBody: a group message while the device is a member, or a Welcome or
// notice addressed to it.
type Event struct {
	// Seq is the global sequence number; the feed is ordered by it and
	// resumes after it.
	Seq int64
	// ID is the server-assigned UUID of the event.
	ID string
	// Kind is application, proposal, commit, welcome or notice.
	Kind EventBodyKind
	// GroupID is the MLS group id (nil for events outside a group).
	GroupID []byte
	// Epoch is the message's epoch (a Welcome's: the epoch it joins).
	Epoch int64
	// SenderDeviceID is the sending device, empty for server notices. The
	// sender an app shows is the one MLS authenticates, not this.
	SenderDeviceID string
	// RecipientDeviceID is set on events addressed to one device.
	RecipientDeviceID string
	// ServerTime is the server's timestamp; it never decreases along Seq.
	ServerTime time.Time
	// Payload is the MLSMessage as sent or, for a notice, its JSON.
	Payload []byte
}

// Notice types the server posts (Event.Kind == notice; Notice().Type).
const (
	// NoticeRemoveDevice asks a group's members to commit the MLS removal
	// of a device the server cut off (revoked, user disabled or deleted).
	NoticeRemoveDevice = "remove_device"
	// NoticeKeyPackagesLow asks the device to upload more key packages.
	NoticeKeyPackagesLow = "key_packages_low"
)

// Notice is the JSON payload of a server notice. Fields not used by a
// notice type are zero; Raw keeps the whole document for types this SDK
// does not know yet.
type Notice struct {
	Type        string `json:"type"`
	DeviceID    string `json:"device_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
	CipherSuite uint16 `json:"cipher_suite,omitempty"`
	Remaining   int    `json:"remaining,omitempty"`
	LowWater    int    `json:"low_water,omitempty"`
	// Raw is the payload as received.
	Raw json.RawMessage `json:"-"`
}

// ErrNotNotice is returned by Event.Notice for events of other kinds.
var ErrNotNotice = errors.New("sovereign: event is not a notice")

// Notice decodes a notice event's payload.
func (e *Event) Notice() (*Notice, error) {
	if e.Kind != EventBodyKindNotice {
		return nil, ErrNotNotice
	}
	var n Notice
	if err := json.Unmarshal(e.Payload, &n); err != nil {
		return nil, fmt.Errorf("decode notice %d: %w", e.Seq, err)
	}
	n.Raw = append(json.RawMessage(nil), e.Payload...)
	return &n, nil
}

// EventFromBody converts the wire form to an Event, checking what the
// feed relies on (a positive seq, a decodable group id).
func EventFromBody(b EventBody) (*Event, error) {
	if b.Seq < 1 {
		return nil, fmt.Errorf("feed event with invalid seq %d", b.Seq)
	}
	e := &Event{Seq: b.Seq, ID: b.Id, Kind: b.Kind, ServerTime: b.ServerTime, Payload: b.Payload}
	if b.GroupId != nil && *b.GroupId != "" {
		g, err := DecodeGroupID(*b.GroupId)
		if err != nil {
			return nil, fmt.Errorf("feed event %d: %w", b.Seq, err)
		}
		e.GroupID = g
	}
	if b.Epoch != nil {
		e.Epoch = *b.Epoch
	}
	if b.SenderDeviceId != nil {
		e.SenderDeviceID = *b.SenderDeviceId
	}
	if b.RecipientDeviceId != nil {
		e.RecipientDeviceID = *b.RecipientDeviceId
	}
	return e, nil
}

// decodeStreamEvent decodes the data of an SSE "message" event and checks
// that its SSE id (when given) is its seq.
func decodeStreamEvent(id, data string) (*Event, error) {
	var b EventBody
	if err := json.Unmarshal([]byte(data), &b); err != nil {
		return nil, fmt.Errorf("decode feed event: %w", err)
	}
	e, err := EventFromBody(b)
	if err != nil {
		return nil, err
	}
	if id != "" && id != strconv.FormatInt(e.Seq, 10) {
		return nil, fmt.Errorf("event id %q differs from seq %d", id, e.Seq)
	}
	return e, nil
}
