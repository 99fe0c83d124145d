package models

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Role is a user's role on the server.
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// User is a person with an account.
type User struct {
	ID          string
	Username    string
	DisplayName string
	Role        Role
	WebAuthnID  []byte
	DisabledAt  *time.Time
	CreatedAt   time.Time
}

// Device is one app install: one MLS client of a user.
type Device struct {
	ID         string
	UserID     string
	Name       string
	CreatedAt  time.Time
	LastSeenAt *time.Time
	RevokedAt  *time.Time
	// SignatureKey is the device's MLS signature public key and Binding the
	// passkey assertion over its binding challenge (DeviceBindingChallenge);
	// both nil for a device signed in without binding.
	SignatureKey []byte
	Binding      *Assertion
}

// Session is a signed-in device. The token itself is never stored.
type Session struct {
	ID         string
	UserID     string
	DeviceID   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
}

// Principal is who an authenticated request acts for.
type Principal struct {
	UserID     string
	Username   string
	Role       Role
	DeviceID   string
	SessionID  string
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// IsAdmin reports whether the principal has the admin role.
func (p *Principal) IsAdmin() bool { return p != nil && p.Role == RoleAdmin }

// TokenBytes is the size of session tokens and invite codes' randomness.
const TokenBytes = 32

// NewToken returns a fresh 256-bit random token (base64url, no padding) and
// the SHA-256 hash that is the only form the server stores.
func NewToken() (token string, hash []byte) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of a token as presented by a client.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Millis converts a time to Unix milliseconds, the storage form of times.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis converts Unix milliseconds to a UTC time.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// FromMillisPtr converts a nullable column.
func FromMillisPtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := FromMillis(*ms)
	return &t
}
