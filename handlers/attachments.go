package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/sovereign-im/sovereign/blobstore"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// TagAttachments groups the attachment operations.
const TagAttachments = "attachments"

// uploadIdleTimeout ends an upload whose client sends nothing for this
// long; the bytes received so far stay and the client resumes.
const uploadIdleTimeout = 60 * time.Second

// AttachmentPath names an attachment in a URL.
type AttachmentPath struct {
	ID string `path:"id" pattern:"^[0-9a-f-]{36}$" doc:"Attachment id (a UUID)" example:"0b3c8a4e-3f1e-4d0c-9a57-5f8e2c1d7a90"`
}

// CreateAttachmentInput declares an upload.
type CreateAttachmentInput struct {
	Body struct {
		GroupID string `json:"group_id" minLength:"2" maxLength:"340" doc:"The group the attachment is for (base64url without padding); the calling device must be a member now"`
		Size    int64  `json:"size" minimum:"0" doc:"Exact length of the encrypted bytes that will be uploaded; at most --max-attachment-bytes. Reserved at once in the group's and the user's quota."`
	}
}

// AttachmentBody describes an attachment and its upload.
type AttachmentBody struct {
	ID        string    `json:"id" doc:"Attachment id; put it (with the key and digest) inside the MLS message that refers to the attachment"`
	GroupID   string    `json:"group_id" doc:"The attachment's group (base64url without padding)"`
	Size      int64     `json:"size" doc:"Declared length of the encrypted bytes"`
	Offset    int64     `json:"offset" doc:"Bytes durably stored so far: the next upload request starts here"`
	Complete  bool      `json:"complete" doc:"Whether every byte is stored; only complete attachments can be downloaded"`
	UploadURL string    `json:"upload_url" doc:"Path to PUT the bytes to (relative to the API's origin)"`
	CreatedAt time.Time `json:"created_at" doc:"When the attachment was declared"`
}

// AttachmentOutput is an attachment's description.
type AttachmentOutput struct {
	Body AttachmentBody
}

// UploadAttachmentInput is a ranged PUT of attachment bytes.
type UploadAttachmentInput struct {
	AttachmentPath
	Offset       string `query:"offset" doc:"Where the body's bytes start (must equal the stored offset). Alternatively give Content-Range."`
	ContentRange string `header:"Content-Range" doc:"bytes FIRST-LAST/SIZE: where the body's bytes go (FIRST must equal the stored offset; SIZE the declared size)"`

	contentLength int64
}

// Resolve reads the body's length (net/http keeps it out of the headers).
func (u *UploadAttachmentInput) Resolve(ctx huma.Context) []error {
	r, _ := humago.Unwrap(ctx)
	u.contentLength = r.ContentLength
	return nil
}

// DownloadAttachmentInput is a (ranged) download.
type DownloadAttachmentInput struct {
	AttachmentPath
}

func (h *handler) maxAttachmentBytes() int64 {
	if n := h.d.Config.Limits.MaxAttachmentBytes; n > 0 {
		return n
	}
	return config.Default().Limits.MaxAttachmentBytes
}

func attachmentBody(a *models.Attachment, offset int64) AttachmentBody {
	if a.Complete() {
		offset = a.Size
	}
	return AttachmentBody{ID: a.ID, GroupID: encodeGroupID(a.GroupID), Size: a.Size, Offset: offset, Complete: a.Complete(),
		UploadURL: "/v1/attachments/" + a.ID, CreatedAt: a.CreatedAt}
}

func (h *handler) registerAttachments(api huma.API) {
	statusSchema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[AttachmentBody](), true, "")
	problemSchema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[Problem](), true, "")
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{"application/problem+json": {Schema: problemSchema}}}
	}

	huma.Register(api, huma.Operation{
		OperationID: "createAttachment",
		Method:      http.MethodPost,
		Path:        "/v1/attachments",
		Summary:     "Declare an attachment upload",
		Description: "Declares an upload of `size` client-encrypted bytes for a group the calling device is a member of, and returns its id and upload URL. " +
			"The size is reserved at once in the group's quota (counted with its messages' bytes) and in the user's attachment quota: " +
			"413 beyond --max-attachment-bytes, 507 when a quota is full; nothing is stored then. Uploads never completed are deleted after a day. See docs/attachments.md.",
		Tags:          []string{TagAttachments},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *CreateAttachmentInput) (*AttachmentOutput, error) {
		p := PrincipalFrom(ctx)
		gid, err := decodeGroupID(in.Body.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if lim := h.maxAttachmentBytes(); in.Body.Size > lim {
			return nil, h.fail(ctx, models.Errorf(models.ETOOLARGE, "attachment_too_large",
				"the attachment is %d bytes; the limit is %d bytes", in.Body.Size, lim))
		}
		a, err := h.d.Store.CreateAttachment(ctx, storeCreateAttachment(p, gid, in.Body.Size))
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &AttachmentOutput{Body: attachmentBody(a, 0)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "getAttachmentUpload",
		Method:      http.MethodGet,
		Path:        "/v1/attachments/{id}/upload",
		Summary:     "Status of an attachment upload",
		Description: "Returns how many bytes are durably stored (`offset`): resume an interrupted upload there. Only the uploading device may ask; " +
			"anyone else gets 403, whether or not the attachment exists.",
		Tags:     []string{TagAttachments},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *DownloadAttachmentInput) (*AttachmentOutput, error) {
		p := PrincipalFrom(ctx)
		a, err := h.d.Store.AttachmentForUpload(ctx, p.DeviceID, in.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		off, complete, err := h.d.Blobs.Status(ctx, a.ID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if complete && !a.Complete() {
			// The bytes were committed but the server stopped before it
			// marked the row (or answered): finish now.
			if a, err = h.d.Store.CompleteAttachment(ctx, a.ID); err != nil {
				return nil, h.fail(ctx, err)
			}
		}
		return &AttachmentOutput{Body: attachmentBody(a, off)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "uploadAttachment",
		Method:      http.MethodPut,
		Path:        "/v1/attachments/{id}",
		Summary:     "Upload attachment bytes",
		Description: "Appends the body's bytes at `offset` (query) or at FIRST of `Content-Range: bytes FIRST-LAST/SIZE`, which must equal the stored offset " +
			"(else 409 with the stored offset in `upload_offset` and the `Upload-Offset` header). Bytes are fsynced before the answer; a dropped " +
			"connection keeps what arrived, so the client asks GET /v1/attachments/{id}/upload and resumes. When the last byte is stored the " +
			"attachment becomes complete, atomically (never half visible). Only the uploading device may upload.",
		Tags:     []string{TagAttachments},
		Security: bearer,
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}},
		Responses: map[string]*huma.Response{
			"200": {Description: "The bytes are stored; `offset` is the new stored length", Content: map[string]*huma.MediaType{"application/json": {Schema: statusSchema}}},
			"401": problem("Unauthorized"),
			"403": problem("Not the uploading device, or no such attachment"),
			"409": problem("The range does not start at the stored offset, or the attachment is complete"),
			"413": problem("More bytes than the declared size"),
			"422": problem("Unprocessable Entity"),
		},
	}, h.uploadAttachment)

	huma.Register(api, huma.Operation{
		OperationID: "downloadAttachment",
		Method:      http.MethodGet,
		Path:        "/v1/attachments/{id}",
		Summary:     "Download an attachment",
		Description: "Returns the encrypted bytes of a complete attachment, to a device that is a member of its group now or was when it was uploaded " +
			"(the rule of the group's history); anyone else gets 403, whether or not the attachment exists. Supports HTTP range requests " +
			"(206), `If-None-Match` and `If-Range` with the `ETag`; the bytes never change (`Cache-Control: private, immutable`).",
		Tags:     []string{TagAttachments},
		Security: bearer,
		Responses: map[string]*huma.Response{
			"200": {Description: "The whole blob", Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
			"206": {Description: "The requested range", Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
			"304": {Description: "Not modified (If-None-Match)"},
			"401": problem("Unauthorized"),
			"403": problem("Not a member of the attachment's group (now or at upload), or no such attachment"),
			"416": {Description: "Range not satisfiable"},
			"422": problem("Unprocessable Entity"),
		},
	}, h.downloadAttachment)
}

func (h *handler) uploadAttachment(ctx context.Context, in *UploadAttachmentInput) (*huma.StreamResponse, error) {
	p := PrincipalFrom(ctx)
	a, err := h.d.Store.AttachmentForUpload(ctx, p.DeviceID, in.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	offset, err := ParseUploadRange(in.Offset, in.ContentRange, in.contentLength, a.Size)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	stored, complete, err := h.d.Blobs.Status(ctx, a.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	if a.Complete() || complete && offset == a.Size {
		// Complete, or committed by a request whose answer was lost: say so.
		if !a.Complete() {
			if a, err = h.d.Store.CompleteAttachment(ctx, a.ID); err != nil {
				return nil, h.fail(ctx, err)
			}
		}
		if offset != a.Size {
			return nil, offsetConflict(a.Size, "the attachment is complete")
		}
		return jsonStream(http.StatusOK, attachmentBody(a, a.Size)), nil
	}
	if offset != stored {
		return nil, offsetConflict(stored, "the upload does not start at the stored offset")
	}
	remaining := a.Size - offset
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		r, w := humago.Unwrap(hctx)
		rc := http.NewResponseController(w)
		body := &idleReader{r: r.Body, rc: rc}
		n, err := h.d.Blobs.Append(hctx.Context(), a.ID, offset, body, remaining)
		var oe *blobstore.ErrOffset
		switch {
		case errors.As(err, &oe):
			writeHTTPProblem(w, offsetConflict(oe.Committed, "another request moved the stored offset"))
			return
		case err != nil:
			// The client went away or stalled: what arrived is stored.
			h.log().InfoContext(hctx.Context(), "attachment upload interrupted", "id", a.ID, "offset", n, "err", err)
			writeHTTPProblem(w, &Problem{Status: http.StatusBadRequest, Title: http.StatusText(http.StatusBadRequest),
				Detail: "the upload was interrupted; resume at the stored offset", Code: "upload_interrupted",
				UploadOffset: &n, headers: http.Header{"Upload-Offset": {strconv.FormatInt(n, 10)}}})
			return
		}
		if n == a.Size {
			var one [1]byte
			if k, _ := io.ReadFull(body, one[:]); k > 0 {
				writeHTTPProblem(w, &Problem{Status: http.StatusRequestEntityTooLarge, Title: http.StatusText(http.StatusRequestEntityTooLarge),
					Detail: fmt.Sprintf("the body holds more than the declared %d bytes", a.Size), Code: "attachment_too_large",
					UploadOffset: &n, headers: http.Header{"Upload-Offset": {strconv.FormatInt(n, 10)}}})
				return
			}
			if err := h.d.Blobs.Commit(hctx.Context(), a.ID); err != nil {
				writeHTTPProblem(w, h.fail(hctx.Context(), err).(*Problem))
				return
			}
			done, err := h.d.Store.CompleteAttachment(hctx.Context(), a.ID)
			if err != nil {
				writeHTTPProblem(w, h.fail(hctx.Context(), err).(*Problem))
				return
			}
			a = done
		}
		w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
		writeJSON(w, http.StatusOK, attachmentBody(a, n))
	}}, nil
}

func (h *handler) downloadAttachment(ctx context.Context, in *DownloadAttachmentInput) (*huma.StreamResponse, error) {
	p := PrincipalFrom(ctx)
	a, err := h.d.Store.AttachmentForDownload(ctx, p.DeviceID, in.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	b, err := h.d.Blobs.Open(ctx, a.ID)
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, h.fail(ctx, errAttachmentGone())
	}
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer b.Close()
		r, w := humago.Unwrap(hctx)
		hd := w.Header()
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("ETag", `"`+a.ID+`"`)
		hd.Set("Cache-Control", "private, max-age=31536000, immutable")
		hd.Set("Content-Disposition", "attachment")
		// ServeContent answers Range (206, 416), If-Range, If-None-Match
		// and HEAD from the ETag and the blob's size; it streams from the
		// file, never holding the blob in memory.
		http.ServeContent(w, r, "", a.CompletedAt.UTC(), b)
	}}, nil
}

func errAttachmentGone() error {
	return models.Errorf(models.EGONE, "attachment_gone", "the attachment's bytes are no longer stored")
}

func storeCreateAttachment(p *models.Principal, gid []byte, size int64) store.CreateAttachmentInput {
	return store.CreateAttachmentInput{DeviceID: p.DeviceID, UserID: p.UserID, GroupID: gid, Size: size}
}

func offsetConflict(stored int64, msg string) *Problem {
	return &Problem{Status: http.StatusConflict, Title: http.StatusText(http.StatusConflict), Detail: msg, Code: "upload_offset_mismatch",
		UploadOffset: &stored, headers: http.Header{"Upload-Offset": {strconv.FormatInt(stored, 10)}}}
}

// ParseUploadRange returns where an upload request's bytes start, from the
// offset query parameter or the Content-Range header (bytes FIRST-LAST/SIZE),
// checked against the declared size and the Content-Length (0 or negative:
// unknown). Both may be given if they agree; neither means 0.
func ParseUploadRange(offsetQuery, contentRange string, contentLength, size int64) (int64, error) {
	bad := func(format string, args ...any) (int64, error) {
		return 0, models.Errorf(models.EINVALID, "invalid_upload_range", format, args...)
	}
	offset := int64(-1)
	if offsetQuery != "" {
		n, err := parseDecimal(offsetQuery)
		if err != nil {
			return bad("offset must be a decimal number of bytes")
		}
		offset = n
	}
	if cr := strings.TrimSpace(contentRange); cr != "" {
		unit, spec, ok := strings.Cut(cr, " ")
		if !ok || !strings.EqualFold(unit, "bytes") {
			return bad("Content-Range must be bytes FIRST-LAST/SIZE")
		}
		rng, total, ok := strings.Cut(strings.TrimSpace(spec), "/")
		if !ok {
			return bad("Content-Range must be bytes FIRST-LAST/SIZE")
		}
		if total != "*" {
			t, err := parseDecimal(total)
			if err != nil || t != size {
				return bad("Content-Range's SIZE must be the declared size %d", size)
			}
		}
		firstS, lastS, ok := strings.Cut(rng, "-")
		if !ok {
			return bad("Content-Range must be bytes FIRST-LAST/SIZE")
		}
		first, err1 := parseDecimal(firstS)
		last, err2 := parseDecimal(lastS)
		if err1 != nil || err2 != nil || last < first {
			return bad("Content-Range must be bytes FIRST-LAST/SIZE with FIRST ≤ LAST")
		}
		if last >= size {
			return 0, models.Errorf(models.ETOOLARGE, "attachment_too_large", "Content-Range ends past the declared size %d", size)
		}
		if contentLength > 0 && last-first+1 != contentLength {
			return bad("Content-Range covers %d bytes but the body has %d", last-first+1, contentLength)
		}
		if offset >= 0 && offset != first {
			return bad("offset and Content-Range disagree")
		}
		offset = first
	}
	if offset < 0 {
		offset = 0
	}
	if offset > size {
		return bad("offset %d is past the declared size %d", offset, size)
	}
	if contentLength > 0 && contentLength > size-offset {
		return 0, models.Errorf(models.ETOOLARGE, "attachment_too_large", "the body holds more than the %d bytes left of the declared size", size-offset)
	}
	return offset, nil
}

// parseDecimal accepts 1 to 18 ASCII digits (no sign, no spaces).
func parseDecimal(s string) (int64, error) {
	if len(s) == 0 || len(s) > 18 {
		return 0, errors.New("not a decimal")
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// idleReader renews the connection's read deadline before each read, so a
// stalled upload ends after uploadIdleTimeout while a slow one goes on.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (i *idleReader) Read(p []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(uploadIdleTimeout))
	return i.r.Read(p)
}

// jsonStream answers with a JSON body from a StreamResponse operation.
func jsonStream(status int, v any) *huma.StreamResponse {
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		_, w := humago.Unwrap(hctx)
		writeJSON(w, status, v)
	}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeHTTPProblem writes p on a raw response writer (the upload path
// streams its body outside Huma).
func writeHTTPProblem(w http.ResponseWriter, p *Problem) {
	for k, vs := range p.headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
