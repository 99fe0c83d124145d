package models

import "time"

// Group is an MLS group as the Delivery Service sees it: its id (the MLS
// group_id bytes, chosen by the creator), its current epoch and the latest
// GroupInfo a committer gave.
type Group struct {
	ID        []byte
	Epoch     uint64
	GroupInfo []byte
	BytesUsed int64
	CreatedAt time.Time
	// JoinedSeq is when the asking device joined (its membership starts after it).
	JoinedSeq int64
	Members   []GroupMember
}

// GroupMember is one member device of a group and its user.
type GroupMember struct {
	DeviceID string
	UserID   string
	Username string
	// DisplayName is the user's display name, which the user may change.
	DisplayName string
	JoinedSeq   int64
	// SignatureKey and Binding are the device's passkey binding (nil when
	// unbound).
	SignatureKey []byte
	Binding      *Assertion
}

// Receipt is the server's record of one stored message: what a sender gets
// back, and what an idempotent retry returns again.
type Receipt struct {
	ID         string    `json:"id"`
	Seq        int64     `json:"seq"`
	ServerTime time.Time `json:"server_time"`
	Kind       EventKind `json:"kind"`
	Epoch      uint64    `json:"epoch"`
}

// WelcomeReceipt is a Welcome stored for one added device.
type WelcomeReceipt struct {
	DeviceID string `json:"device_id"`
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
}

// CommitResult is the outcome of an accepted commit bundle.
type CommitResult struct {
	Commit         Receipt          `json:"commit"`
	Epoch          uint64           `json:"epoch"` // the group's new epoch
	Welcomes       []WelcomeReceipt `json:"welcomes"`
	AddedDevices   []string         `json:"added_devices"`
	RemovedDevices []string         `json:"removed_devices"`
}

// Notice types posted by the server to groups or devices (payload "type").
const (
	// NoticeRemoveDevice asks a group's members to commit a Remove of a
	// revoked device: the server stopped routing to it and cannot remove
	// it from the MLS group itself.
	NoticeRemoveDevice = "remove_device"
)

// RemoveDeviceNotice is the JSON payload of a remove_device notice.
type RemoveDeviceNotice struct {
	Type     string `json:"type"`
	DeviceID string `json:"device_id"`
	UserID   string `json:"user_id"`
	Reason   string `json:"reason"`
}

// NoticeKeyPackagesLow asks a device to upload more key packages.
const NoticeKeyPackagesLow = "key_packages_low"

// KeyPackagesLowNotice is the JSON payload of a key_packages_low notice,
// addressed to the device whose pool a claim took below the low-water mark.
type KeyPackagesLowNotice struct {
	Type        string `json:"type"`
	DeviceID    string `json:"device_id"`
	CipherSuite uint16 `json:"cipher_suite"`
	Remaining   int    `json:"remaining"`
	LowWater    int    `json:"low_water"`
}

// NoticeNewDevice tells a user's other devices that a new device signed in.
const NoticeNewDevice = "new_device"

// NewDeviceNotice is the JSON payload of a new_device notice, addressed to
// each other active device of the user when a new device signs in (never
// for the user's first device).
type NewDeviceNotice struct {
	Type       string `json:"type" enum:"new_device" doc:"Always new_device"`
	DeviceID   string `json:"device_id" doc:"The new device"`
	DeviceName string `json:"device_name" doc:"The new device's name, as its sign-in gave it"`
	UserID     string `json:"user_id" doc:"The user (yours)"`
	CreatedAt  string `json:"created_at" doc:"When the new device signed in (RFC 3339)"` // RFC 3339
	// Location is where the sign-in came from, coarsely; nil when the
	// server has no --geoip-db, or the address is private or unknown.
	Location *Location `json:"location,omitempty" doc:"Coarse location of the sign-in's client address, looked up in the server's local GeoIP database (--geoip-db); absent when the server has none (the default), or for a private or unknown address. Never the address itself."`
}

// Location is a client address's coarse location, as sign-in notices show
// it: a country and at most a city name; never coordinates, a postal code
// or the address.
type Location struct {
	Country string `json:"country" pattern:"^[A-Z]{2}$" doc:"ISO 3166-1 alpha-2 country code, e.g. DE"`
	City    string `json:"city,omitempty" maxLength:"128" doc:"City name in English, e.g. Berlin; absent when the database has none for the address (a country database)"`
}

// NoticeKeyPackagesExpiring tells a device that key packages of its stock
// end their lifetime soon.
const NoticeKeyPackagesExpiring = "key_packages_expiring"

// KeyPackagesExpiringNotice is the JSON payload of a key_packages_expiring
// notice: how many normal packages of the suite expire before NotAfter and
// whether the last-resort package does.
type KeyPackagesExpiringNotice struct {
	Type        string `json:"type"`
	DeviceID    string `json:"device_id"`
	CipherSuite uint16 `json:"cipher_suite"`
	Normal      int    `json:"normal"`
	LastResort  bool   `json:"last_resort"`
	Before      string `json:"before"` // RFC 3339: they expire before this time
}

// NoticeMemberLeft tells a group's members that a device left by a
// self-Remove proposal, which the next commit must include.
const NoticeMemberLeft = "member_left"

// Notices of account changes, posted to every device of the user so that a
// passkey added or removed behind the owner's back shows on all of them.
const (
	NoticePasskeyAdded   = "passkey_added"
	NoticePasskeyRemoved = "passkey_removed"
)

// PasskeyNotice is the JSON payload of a passkey_added or passkey_removed
// notice. ByDeviceID is the device that made the change (empty for an
// admin's recovery); Reason says why a passkey went (deleted,
// ended_sessions, recovery).
type PasskeyNotice struct {
	Type       string `json:"type"`
	UserID     string `json:"user_id"`
	PasskeyID  string `json:"passkey_id"`
	Name       string `json:"name"`
	ByDeviceID string `json:"by_device_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
}
