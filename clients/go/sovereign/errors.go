package sovereign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// APIError is a problem answer (RFC 9457) from the server.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the problem's machine-readable code (e.g. epoch_mismatch,
	// rate_limited, cursor_expired); empty if the body had none.
	Code string
	// Detail explains this occurrence.
	Detail string
	// RetryAfter is the Retry-After header as sent (seconds), if any.
	RetryAfter string
	// CurrentEpoch is the group's epoch when a commit or message was
	// refused for its epoch (409), or nil.
	CurrentEpoch *int64
	// Body is the problem document (at most 64 KiB of it).
	Body []byte
}

func (e *APIError) Error() string {
	if e.Code == "" && e.Detail == "" {
		return fmt.Sprintf("sovereign: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("sovereign: %d %s: %s", e.Status, e.Code, e.Detail)
}

// RetryAfterDuration is RetryAfter as a duration (0 if absent or not a
// number of seconds).
func (e *APIError) RetryAfterDuration() time.Duration {
	n, err := strconv.Atoi(e.RetryAfter)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// Problem decodes the body as the generated Problem type.
func (e *APIError) Problem() (*Problem, error) {
	var p Problem
	if err := json.Unmarshal(bytes.TrimSpace(e.Body), &p); err != nil {
		return nil, fmt.Errorf("decode problem: %w", err)
	}
	return &p, nil
}

// NewAPIError reads a problem answer (at most 64 KiB of it) from resp. It
// does not close the body.
func NewAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return apiErrorFrom(resp.StatusCode, resp.Header, body)
}

func apiErrorFrom(status int, h http.Header, body []byte) *APIError {
	e := &APIError{Status: status, RetryAfter: h.Get("Retry-After"), Body: body}
	// Tolerant extraction: a body that fails to decode still yields an error.
	var p struct {
		Code         string `json:"code"`
		Detail       string `json:"detail"`
		CurrentEpoch *int64 `json:"current_epoch"`
	}
	if json.Unmarshal(bytes.TrimSpace(body), &p) == nil {
		e.Code, e.Detail, e.CurrentEpoch = p.Code, p.Detail, p.CurrentEpoch
	}
	return e
}

// retryable tells whether a status may succeed if the same request is sent
// again later: timeouts, rate limits and server-side failures.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
