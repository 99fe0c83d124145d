package models

import "time"

// Attachment is the metadata of a client-encrypted blob stored for a group.
// The server never sees its plaintext, its key or which message refers to
// it.
type Attachment struct {
	ID               string
	GroupID          []byte
	UploaderDeviceID string
	UploaderUserID   string
	// Size is the declared length of the ciphertext in bytes.
	Size int64
	// UploadSeq is the feed position at creation: devices that were
	// members then (or are now) may download it.
	UploadSeq   int64
	CreatedAt   time.Time
	CompletedAt *time.Time
}

// Complete reports whether every byte has been uploaded.
func (a *Attachment) Complete() bool { return a.CompletedAt != nil }
