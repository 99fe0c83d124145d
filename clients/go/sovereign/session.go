package sovereign

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Bearer returns a request editor that authenticates with a session token.
func Bearer(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// EncodeGroupID is the form a group id takes in URLs and JSON: base64url
// without padding.
func EncodeGroupID(groupID []byte) string { return base64.RawURLEncoding.EncodeToString(groupID) }

// DecodeGroupID reverses EncodeGroupID.
func DecodeGroupID(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode group id: %w", err)
	}
	return b, nil
}

// Session is a signed-in device: the generated client (every API operation,
// authenticated with the session token) plus the hand-written helpers Send,
// Commit and Stream. It is safe for concurrent use.
type Session struct {
	*ClientWithResponses
	server string
	token  string
	http   *http.Client
	retry  RetryPolicy
	// unpadded lets Send post application messages that are not padded.
	unpadded bool
}

// SessionOption configures NewSession.
type SessionOption func(*Session)

// WithHTTP makes the session use hc (default http.DefaultClient). Streams
// use a copy of it without its Timeout, which would cut them off.
func WithHTTP(hc *http.Client) SessionOption { return func(s *Session) { s.http = hc } }

// WithRetry sets how Send and Commit retry transient failures.
func WithRetry(p RetryPolicy) SessionOption { return func(s *Session) { s.retry = p } }

// WithUnpaddedMessages lets Send post application messages that are not
// padded to a padding bucket (by default it refuses them with
// ErrUnpadded: a server run with --require-padding would, and padding keeps
// message lengths from the server).
func WithUnpaddedMessages() SessionOption { return func(s *Session) { s.unpadded = true } }

// RetryPolicy bounds the retries of idempotent sends.
type RetryPolicy struct {
	// Attempts is the most tries of one send, first included (default 5).
	Attempts int
	// MinBackoff and MaxBackoff bound the wait between tries (default
	// 250 ms and 10 s), doubled after each failure, with jitter; a
	// Retry-After from the server wins.
	MinBackoff, MaxBackoff time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = 250 * time.Millisecond
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(10*time.Second, p.MinBackoff)
	}
	return p
}

// NewSession returns a session for server (e.g. https://chat.example.org)
// and a session token (SessionGrant.Token from registration or login).
func NewSession(server, token string, opts ...SessionOption) (*Session, error) {
	s := &Session{server: strings.TrimSuffix(server, "/"), token: token, http: http.DefaultClient}
	for _, o := range opts {
		o(s)
	}
	s.retry = s.retry.withDefaults()
	c, err := NewClientWithResponses(s.server, WithHTTPClient(s.http), WithRequestEditorFn(Bearer(token)))
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s.ClientWithResponses = c
	return s, nil
}

// Server is the server's base URL.
func (s *Session) Server() string { return s.server }

// Token is the session token.
func (s *Session) Token() string { return s.token }
