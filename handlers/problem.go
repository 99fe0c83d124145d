package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/ratelimit"
)

// Problem is an RFC 9457 problem detail, Sovereign's only error body. It
// carries a machine-readable code and, where relevant, the group's current
// epoch (for 409s), the index of an offending batch element and the seconds
// to wait (for 429s).
type Problem struct {
	Type         string              `json:"type,omitempty" format:"uri" default:"about:blank" doc:"A URI reference that identifies the problem type"`
	Title        string              `json:"title,omitempty" doc:"Short summary of the problem type" example:"Conflict"`
	Status       int                 `json:"status,omitempty" doc:"HTTP status code" example:"409"`
	Detail       string              `json:"detail,omitempty" doc:"Explanation specific to this occurrence"`
	Instance     string              `json:"instance,omitempty" format:"uri" doc:"URI reference identifying this occurrence"`
	Code         string              `json:"code,omitempty" doc:"Machine-readable reason, e.g. epoch_mismatch, rate_limited" example:"epoch_mismatch"`
	CurrentEpoch *uint64             `json:"current_epoch,omitempty" doc:"The group's current epoch, when a message or commit was refused for its epoch"`
	Index        *int                `json:"index,omitempty" doc:"Index of the offending element of a batch"`
	RetryAfter   int                 `json:"retry_after,omitempty" doc:"Seconds to wait before retrying (also in the Retry-After header)"`
	Errors       []*huma.ErrorDetail `json:"errors,omitempty" doc:"Validation failures"`
	Resync       *Resync             `json:"resync,omitempty" doc:"With 410 cursor_expired: what the device needs to resynchronise"`
	UploadOffset *int64              `json:"upload_offset,omitempty" doc:"With an attachment upload refused or interrupted: the bytes stored, where the next upload request starts"`

	headers http.Header
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders implements huma.HeadersError.
func (p *Problem) GetHeaders() http.Header { return p.headers }

// ContentType makes problems application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

// NewProblem builds a problem; it is installed as huma.NewError so that
// Huma's own errors (validation, body too large) have the same shape.
func NewProblem(status int, msg string, errs ...error) huma.StatusError {
	p := &Problem{Status: status, Title: http.StatusText(status), Detail: clip(msg, maxProblemText)}
	for _, e := range errs {
		if e == nil {
			continue
		}
		if len(p.Errors) == maxProblemErrors {
			p.Errors = append(p.Errors, &huma.ErrorDetail{Message: "more validation failures left out"})
			break
		}
		var d *huma.ErrorDetail
		if de, ok := e.(huma.ErrorDetailer); ok {
			d = de.ErrorDetail()
		} else {
			d = &huma.ErrorDetail{Message: e.Error()}
		}
		// Never echo large input back: a value is kept only while it is
		// small (1 MB in must not be 1 MB out).
		d.Message, d.Location = clip(d.Message, maxProblemText), clip(d.Location, maxProblemText)
		if d.Value != nil {
			if raw, err := json.Marshal(d.Value); err != nil || len(raw) > maxEchoedValue {
				d.Value = nil
			}
		}
		p.Errors = append(p.Errors, d)
	}
	p.Code = defaultCode[status]
	if status == http.StatusRequestEntityTooLarge {
		// Huma's own: the body passed the operation's limit. Its message
		// quotes the limit plus one; say what the client needs.
		p.Detail = "the request body is larger than this operation accepts"
	}
	return p
}

// Bounds of what a problem repeats of the request.
const (
	maxProblemErrors = 20
	maxProblemText   = 300
	maxEchoedValue   = 64
)

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// defaultCode is the code of problems Huma itself raises (validation, body
// limits, content types), so every problem carries one.
var defaultCode = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusNotAcceptable:         "not_acceptable",
	http.StatusConflict:              "conflict",
	http.StatusGone:                  "gone",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "validation_failed",
	http.StatusTooManyRequests:       "rate_limited",
	http.StatusInternalServerError:   "internal",
	http.StatusServiceUnavailable:    "unavailable",
}

var statusOf = map[models.Code]int{
	models.EINVALID:      http.StatusUnprocessableEntity,
	models.EBADREQUEST:   http.StatusBadRequest,
	models.ENOTFOUND:     http.StatusNotFound,
	models.ECONFLICT:     http.StatusConflict,
	models.EUNAUTHORIZED: http.StatusUnauthorized,
	models.EFORBIDDEN:    http.StatusForbidden,
	models.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	models.ERATELIMIT:    http.StatusTooManyRequests,
	models.EGONE:         http.StatusGone,
	models.EQUOTA:        http.StatusInsufficientStorage,
}

// fail maps an error from the domain or the store to a problem. Domain
// errors keep their message; anything else is logged and answered with a
// bare 500 so no internal detail leaks.
func (h *handler) fail(ctx context.Context, err error) error {
	var de *models.Error
	if !errors.As(err, &de) || de.Code == models.EINTERNAL {
		if errors.Is(err, context.Canceled) {
			return &Problem{Status: 499, Title: "Client Closed Request", Detail: "the request was cancelled", Code: "cancelled"}
		}
		h.log().ErrorContext(ctx, "internal error", "err", err)
		return &Problem{Status: http.StatusInternalServerError, Title: http.StatusText(500), Detail: "internal error", Code: "internal"}
	}
	status := statusOf[de.Code]
	p := &Problem{
		Status:       status,
		Title:        http.StatusText(status),
		Detail:       de.Message,
		Code:         de.Reason,
		CurrentEpoch: de.CurrentEpoch,
		Index:        de.Index,
		Resync:       resyncBody(de.Resync),
	}
	if p.Code == "" {
		p.Code = string(de.Code)
	}
	switch de.Code {
	case models.ERATELIMIT:
		secs := ratelimit.RetryAfterSeconds(de.RetryAfter)
		p.RetryAfter = secs
		p.headers = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	case models.EUNAUTHORIZED:
		p.headers = http.Header{"WWW-Authenticate": {`Bearer realm="sovereign", error="invalid_token"`}}
	}
	return p
}
