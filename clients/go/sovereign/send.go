package sovereign

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// NewIdempotencyKey returns a fresh random key (128 bits, hex) naming one
// send.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Send posts an MLS message (a PrivateMessage of content type application
// or proposal, or a PublicMessage proposal) to a group. It names the send
// with a fresh Idempotency-Key and retries network failures, 408, 429 and
// 5xx answers with the same key, so the server stores the message once
// however often it is sent. Other answers are an *APIError (409 with
// CurrentEpoch when the message's epoch is out of the accepted window).
// An application message that is not padded to a padding bucket is
// refused with ErrUnpadded before anything is sent, unless the session was
// made WithUnpaddedMessages (see PaddingFor).
func (s *Session) Send(ctx context.Context, groupID, message []byte) (*ReceiptBody, error) {
	return s.SendWithKey(ctx, groupID, message, NewIdempotencyKey())
}

// SendWithKey is Send with a key of the caller's choosing, e.g. one stored
// with the message in an outbox so that a restarted program resends it
// under the same key.
func (s *Session) SendWithKey(ctx context.Context, groupID, message []byte, key string) (*ReceiptBody, error) {
	if !s.unpadded {
		if err := CheckPadded(message); err != nil {
			return nil, err
		}
	}
	gid := EncodeGroupID(groupID)
	var out *ReceiptBody
	err := s.withRetry(ctx, "send", func() (int, http.Header, []byte, error) {
		r, err := s.SendMessageWithResponse(ctx, gid, &SendMessageParams{IdempotencyKey: &key}, SendMessageInputBody{Message: message})
		if err != nil {
			return 0, nil, nil, err
		}
		out = r.JSON201
		return r.StatusCode(), r.HTTPResponse.Header, r.Body, nil
	})
	return out, err
}

// Commit posts a commit bundle (the commit, and the Welcome, GroupInfo and
// removed devices that go with it) with an automatic Idempotency-Key and
// the same retries as Send. A commit that lost its epoch to another
// member's is an *APIError with Status 409 and CurrentEpoch: process the
// winning commit from the feed, then build the commit again.
func (s *Session) Commit(ctx context.Context, groupID []byte, bundle CommitInputBody) (*CommitOutputBody, error) {
	return s.CommitWithKey(ctx, groupID, bundle, NewIdempotencyKey())
}

// CommitWithKey is Commit with a key of the caller's choosing.
func (s *Session) CommitWithKey(ctx context.Context, groupID []byte, bundle CommitInputBody, key string) (*CommitOutputBody, error) {
	gid := EncodeGroupID(groupID)
	var out *CommitOutputBody
	err := s.withRetry(ctx, "commit", func() (int, http.Header, []byte, error) {
		r, err := s.CommitGroupWithResponse(ctx, gid, &CommitGroupParams{IdempotencyKey: &key}, bundle)
		if err != nil {
			return 0, nil, nil, err
		}
		out = r.JSON201
		return r.StatusCode(), r.HTTPResponse.Header, r.Body, nil
	})
	return out, err
}

// withRetry runs try until it answers 2xx, a status retrying cannot fix,
// or the attempts are spent. A transport error is retried (the request
// may or may not have reached the server: the idempotency key makes that
// safe); a context error is not.
func (s *Session) withRetry(ctx context.Context, what string, try func() (int, http.Header, []byte, error)) error {
	p := s.retry
	backoff := p.MinBackoff
	var last error
	for attempt := 1; ; attempt++ {
		status, h, body, err := try()
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", what, ctx.Err())
			}
			last = fmt.Errorf("%s: %w", what, err)
		case status >= 200 && status < 300:
			return nil
		default:
			ae := apiErrorFrom(status, h, body)
			if !retryable(status) {
				return ae
			}
			last, wait = ae, ae.RetryAfterDuration()
		}
		if attempt >= p.Attempts {
			return last
		}
		if wait == 0 {
			wait = jitter(backoff)
			backoff = min(backoff*2, p.MaxBackoff)
		}
		if err := sleep(ctx, wait); err != nil {
			return errors.Join(last, fmt.Errorf("%s: %w", what, err))
		}
	}
}

// jitter spreads d over [0.75 d, 1.25 d) so that clients that failed
// together do not retry together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
