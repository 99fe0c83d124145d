// Package models holds Sovereign's domain types and domain errors. It knows
// nothing of HTTP or SQL: handlers map these errors to problem responses once,
// at the edge, and the store returns them from its use cases.
package models

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies a domain error. Handlers map each code to one HTTP status.
type Code string

// Domain error codes.
const (
	EINVALID      Code = "invalid"        // the input breaks a rule (422)
	EBADREQUEST   Code = "bad_request"    // the request cannot be understood (400)
	ENOTFOUND     Code = "not_found"      // the thing does not exist or is not visible (404)
	ECONFLICT     Code = "conflict"       // the state changed or the thing exists already (409)
	EUNAUTHORIZED Code = "unauthorized"   // no valid credentials (401)
	EFORBIDDEN    Code = "forbidden"      // authenticated but not allowed (403)
	ETOOLARGE     Code = "too_large"      // payload above a limit (413)
	ERATELIMIT    Code = "rate_limited"   // too many requests (429)
	EGONE         Code = "gone"           // no longer retained (410)
	EQUOTA        Code = "quota_exceeded" // a storage quota is full (507)
	EINTERNAL     Code = "internal"       // anything else (500)
)

// Error is a domain error with a machine-readable code, a reason that is safe
// to show to clients, and optional structured details.
type Error struct {
	Code Code
	// Reason is a short machine-readable reason, e.g. "epoch_mismatch".
	Reason string
	// Message is a human-readable explanation without internal details.
	Message string
	// RetryAfter is set for ERATELIMIT.
	RetryAfter time.Duration
	// CurrentEpoch is set when a message or commit is refused for its epoch.
	CurrentEpoch *uint64
	// Index names the offending element of a batch, when there is one.
	Index *int
	// Resync is set with EGONE when a feed cursor is older than what is
	// retained: it tells the client where to resume after resynchronising.
	Resync *Resync
	// Err is the wrapped cause; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error with a formatted message.
func Errorf(code Code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first domain error in err's chain, or
// EINTERNAL when there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// IsCode reports whether err carries the given domain code.
func IsCode(err error, code Code) bool {
	return err != nil && ErrorCode(err) == code
}
