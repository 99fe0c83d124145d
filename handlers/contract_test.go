package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestContractHoldsUnderHostileInput is finding 12 of issue 19: an outside
// client driven only by openapi.yaml. It walks every operation of the
// document against a real server, with a real member and a real admin
// (both signed up through passkey ceremonies), a group, a device, a
// session, a passkey, an invite and an attachment, so that authorised
// paths are reached, and sends hostile input: no or garbage credentials,
// a member on admin operations, malformed JSON, the wrong types, huge and
// negative numbers, bad base64, unknown fields, the wrong content type,
// oversize bodies, and path, query and header parameters that are too
// long, badly encoded or of the wrong type. Every answer must be a status
// the document lists for that operation, never a 5xx, with a body that
// matches the document (testutil.ValidatingTransport), and every problem
// must carry its machine-readable code: 401 "unauthenticated" with
// WWW-Authenticate, a member's 403 on admin operations "admin_required".
// Another member asking for the member's group, device, session, passkey
// or attachment by id is never served (only the directory's {user} and
// {username} operations answer any member).
func TestContractHoldsUnderHostileInput(t *testing.T) {
	const maxBody = 16 << 10
	s := testutil.NewServer(t, func(c *config.Config) {
		c.Limits.MaxBodyBytes = maxBody
		c.Limits.MaxMessageBytes = 4096
	})
	doc, ops := loadSpec(t)
	w := newWalker(t, s, doc)
	start := time.Now()
	for _, op := range ops {
		w.walk(op)
	}
	elapsed := time.Since(start)

	if w.walked != len(ops) || len(ops) < 60 {
		t.Errorf("walked %d of %d operations", w.walked, len(ops))
	}
	// The credentials stayed good to the end, so hostile input reached
	// each operation's own checks, not only authentication.
	for _, op := range ops {
		if op.bearer() && (len(op.Parameters) > 0 || op.RequestBody != nil) && w.reached[op.OperationID] == 0 {
			t.Errorf("%s: no hostile request got past authentication", op.OperationID)
		}
	}
	kinds := make([]string, 0, len(w.findings))
	for k := range w.findings {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Errorf("finding %s: %d answers", k, w.findings[k])
	}
	statuses := make([]string, 0, len(w.statuses))
	for st, n := range w.statuses {
		statuses = append(statuses, fmt.Sprintf("%d×%d", st, n))
	}
	sort.Strings(statuses)
	t.Logf("contract walk: %d operations, %d requests in %v; statuses %s", w.walked, w.sent, elapsed.Round(time.Millisecond), strings.Join(statuses, " "))
}

// maxProblemBytes bounds a problem's size: the walk sends fields of 100 KB
// and a problem must not repeat them.
const maxProblemBytes = 8 << 10

// walker sends the hostile requests and judges the answers.
type walker struct {
	t        *testing.T
	s        *testutil.Server
	doc      *specDoc
	member   testutil.Account
	admin    testutil.Account
	outsider testutil.Account  // another member: in no group, owns none of the ids
	values   map[string]string // real path parameter values, by name or "path:name"
	walked   int
	sent     int
	findings map[string]int
	statuses map[int]int
	reached  map[string]int // answers past authentication, by operation
}

func newWalker(t *testing.T, s *testutil.Server, doc *specDoc) *walker {
	t.Helper()
	admin, _ := s.RegisterAdmin(t, "walkadmin")
	member, _ := s.RegisterMember(t, "walkmember")
	outsider, _ := s.RegisterMember(t, "walkoutsider")
	gid := []byte("contract-walk-group-0001")
	createGroup(t, s, member, gid)
	r := s.Do(t, "POST", "/v1/attachments", member.Token, map[string]any{"group_id": base64.RawURLEncoding.EncodeToString(gid), "size": 16})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create attachment: %d %s", r.StatusCode, r.Body)
	}
	var att struct {
		ID string `json:"id"`
	}
	r.JSON(t, &att)
	r = s.Do(t, "POST", "/v1/admin/invites", admin.Token, map[string]any{"role": "member", "expires_in_hours": 1, "uses": 1})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create invite: %d %s", r.StatusCode, r.Body)
	}
	var inv struct {
		Invite struct {
			ID string `json:"id"`
		} `json:"invite"`
	}
	r.JSON(t, &inv)
	if att.ID == "" || inv.Invite.ID == "" {
		t.Fatalf("attachment %q, invite %q", att.ID, inv.Invite.ID)
	}
	return &walker{
		t: t, s: s, doc: doc, member: member, admin: admin, outsider: outsider,
		values: map[string]string{
			"group_id":                    base64.RawURLEncoding.EncodeToString(gid),
			"device_id":                   member.DeviceID,
			"session_id":                  member.SessionID,
			"passkey_id":                  member.PasskeyID,
			"user":                        admin.Username,
			"username":                    admin.Username,
			"/v1/attachments/{id}":        att.ID,
			"/v1/attachments/{id}/upload": att.ID,
			"/v1/admin/invites/{id}":      inv.Invite.ID,
			"id":                          member.UserID, // /v1/admin/users/{id}/…
		},
		findings: map[string]int{},
		statuses: map[int]int{},
		reached:  map[string]int{},
	}
}

// request is one request of the walk.
type request struct {
	what        string
	token       string
	path        map[string]string // raw (already escaped) path values
	query       url.Values
	header      http.Header
	body        []byte
	contentType string
	hasBody     bool
}

// base is a well-formed request for op by the principal it is meant for:
// real path values, no optional parameter (except a zero long-poll
// timeout), and a sample body when the operation requires one.
func (w *walker) base(op *specOp, what string) request {
	r := request{what: what, path: map[string]string{}, query: url.Values{}, header: http.Header{}}
	if op.bearer() {
		r.token = w.member.Token
		if op.admin() {
			r.token = w.admin.Token
		}
	}
	for _, p := range op.Parameters {
		switch {
		case p.In == "path":
			v, ok := w.values[op.path]
			if !ok {
				v, ok = w.values[p.Name]
			}
			if !ok {
				w.t.Fatalf("%s: no value for path parameter %s", op.OperationID, p.Name)
			}
			r.path[p.Name] = url.PathEscape(v)
		case p.In == "query" && p.Name == "timeout":
			r.query.Set(p.Name, "0")
		case p.Required && p.In == "query":
			r.query.Set(p.Name, fmt.Sprint(w.doc.sample(p.Schema)))
		case p.Required:
			w.t.Fatalf("%s: required %s parameter %s has no sample", op.OperationID, p.In, p.Name)
		}
	}
	if rb := op.RequestBody; rb != nil && rb.Required {
		if c, ok := rb.Content["application/json"]; ok {
			r.body, _ = json.Marshal(w.doc.sample(c.Schema))
			r.contentType = "application/json"
		} else {
			r.body, r.contentType = []byte("x"), "application/octet-stream"
		}
		r.hasBody = true
	}
	return r
}

// walk sends every hostile variant that applies to op.
func (w *walker) walk(op *specOp) {
	w.walked++
	if op.bearer() {
		for _, auth := range []struct{ what, header string }{
			{"no credentials", ""},
			{"unknown token", "Bearer " + strings.Repeat("x", 43)},
			{"token of 300 characters", "Bearer " + strings.Repeat("x", 300)},
			{"basic credentials", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:admin"))},
			{"empty bearer", "Bearer "},
			{"revoked-looking token", "Bearer " + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0}, 32))},
		} {
			r := w.base(op, auth.what)
			r.token = ""
			if auth.header != "" {
				r.header.Set("Authorization", auth.header)
			}
			resp, p := w.send(op, r)
			if resp.StatusCode != http.StatusUnauthorized || p.Code != "unauthenticated" || resp.Header.Get("WWW-Authenticate") == "" {
				w.finding(op, r, "401 without code unauthenticated and WWW-Authenticate", resp.StatusCode, p)
			}
		}
		if op.admin() {
			r := w.base(op, "a member on an admin operation")
			r.token = w.member.Token
			resp, p := w.send(op, r)
			if resp.StatusCode != http.StatusForbidden || p.Code != "admin_required" {
				w.finding(op, r, "member's 403 without admin_required", resp.StatusCode, p)
			}
		}
	}
	if op.bearer() && !op.admin() && hasPathParameter(op) {
		// Someone else's ids: the member's group, device, session,
		// passkey and attachment, asked for by another member.
		r := w.base(op, "another member's ids")
		r.token = w.outsider.Token
		resp, p := w.send(op, r)
		public := strings.Contains(op.path, "{user}") || strings.Contains(op.path, "{username}")
		if resp.StatusCode < 300 && !public {
			w.finding(op, r, "another member's resource served", resp.StatusCode, p)
		}
	}
	for _, p := range op.Parameters {
		for _, v := range hostileValues(p.In, w.doc.resolve(p.Schema)) {
			if p.Name == "timeout" && v == "" {
				continue // an empty value is no value: the default 30 s long poll
			}
			r := w.base(op, fmt.Sprintf("%s parameter %s = %.40q", p.In, p.Name, v))
			switch p.In {
			case "path":
				r.path[p.Name] = v
			case "query":
				r.query.Set(p.Name, v)
			case "header":
				r.header.Set(p.Name, v)
			}
			w.send(op, r)
		}
	}
	if op.RequestBody == nil {
		if op.method == http.MethodGet {
			r := w.base(op, "a body on an operation that takes none")
			r.body, r.contentType, r.hasBody = []byte("garbage"), "text/plain", true
			w.send(op, r)
		}
		return
	}
	json, isJSON := op.RequestBody.Content["application/json"]
	for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/x-www-form-urlencoded", "garbage/"} {
		if _, ok := op.RequestBody.Content[ct]; ok {
			continue
		}
		r := w.base(op, "content type "+ct)
		r.body, r.contentType, r.hasBody = []byte(`{"a":1}`), ct, true
		w.send(op, r)
	}
	over := w.base(op, "oversize body")
	over.body, over.hasBody = bytes.Repeat([]byte(" "), 8<<20), true
	over.contentType = "application/json"
	if !isJSON {
		over.contentType = "application/octet-stream"
	}
	w.send(op, over)
	if _, ok := op.RequestBody.Content["application/octet-stream"]; ok {
		for _, b := range []struct {
			what string
			raw  []byte
		}{
			{"empty", nil},
			{"one byte", []byte{0}},
			{"random bytes", bytes.Repeat([]byte{0xff, 0x00, 0xa1, 0x7b}, 64)},
			{"JSON as bytes", []byte(`{"a":1}`)},
		} {
			r := w.base(op, "octet-stream body: "+b.what)
			r.body, r.contentType, r.hasBody = b.raw, "application/octet-stream", true
			w.send(op, r)
		}
	}
	if !isJSON {
		return
	}
	for _, v := range w.doc.hostileBodies(json.Schema) {
		r := w.base(op, v.name)
		r.body, r.contentType, r.hasBody = v.raw, "application/json", true
		w.send(op, r)
	}
}

func hasPathParameter(op *specOp) bool {
	for _, p := range op.Parameters {
		if p.In == "path" {
			return true
		}
	}
	return false
}

// send sends r to op and checks the answer: a documented status, never a
// 5xx, and a problem with a code for every error. The validating transport
// checks the body against the document.
func (w *walker) send(op *specOp, r request) (*http.Response, problem) {
	w.t.Helper()
	w.sent++
	path := op.path
	for name, v := range r.path {
		path = strings.ReplaceAll(path, "{"+name+"}", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader
	if r.hasBody {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, op.method, w.s.URL, body)
	if err != nil {
		w.t.Fatalf("%s %s: %v", op.OperationID, r.what, err)
	}
	// The path as written, escapes and all (url.URL would re-encode it).
	req.URL.Opaque = path
	if u, err := url.Parse(w.s.URL + path); err == nil {
		req.URL.Path, req.URL.RawPath = u.Path, u.RawPath
	}
	req.URL.RawQuery = r.query.Encode()
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.hasBody {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := w.s.Client.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s (%s): %v", op.OperationID, path, r.what, err)
	}
	defer resp.Body.Close()
	var raw []byte
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, err = io.ReadAll(resp.Body)
		if err != nil {
			w.t.Fatalf("%s (%s): read: %v", op.OperationID, r.what, err)
		}
	}
	w.statuses[resp.StatusCode]++
	if r.token != "" && resp.StatusCode != http.StatusUnauthorized && !(op.admin() && r.token == w.member.Token) {
		w.reached[op.OperationID]++
	}
	var p problem
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &p); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			w.finding(op, r, "error that is not a problem", resp.StatusCode, problem{Detail: fmt.Sprintf("%.200s", raw)})
		} else {
			if p.Code == "" {
				w.finding(op, r, "problem without a code", resp.StatusCode, p)
			}
			if p.Status != resp.StatusCode {
				w.finding(op, r, "problem status unlike the response's", resp.StatusCode, p)
			}
			if len(raw) > maxProblemBytes {
				w.finding(op, r, "problem that repeats the input", resp.StatusCode, problem{Code: p.Code, Detail: fmt.Sprintf("%d bytes", len(raw))})
			}
		}
	}
	switch {
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusInsufficientStorage:
		w.finding(op, r, "5xx", resp.StatusCode, p)
	case resp.StatusCode == http.StatusUnsupportedMediaType && r.hasBody && op.takes(r.contentType):
		w.finding(op, r, "415 for a content type the document lists", resp.StatusCode, p)
	case !op.documented(resp.StatusCode):
		w.finding(op, r, fmt.Sprintf("undocumented %d", resp.StatusCode), resp.StatusCode, p)
	}
	return resp, p
}

// finding records one broken promise; the test fails with each listed.
func (w *walker) finding(op *specOp, r request, kind string, status int, p problem) {
	w.t.Helper()
	w.findings[kind]++
	w.t.Errorf("%s %s %s (%s): %s: got %d %q %s", op.OperationID, op.method, op.path, r.what, kind, status, p.Code, p.Detail)
}

// TestUnsafeParametersAreRefused is what the contract walk found on the
// admin search and audit filters: a NUL or bytes that are not UTF-8 in a
// parameter reached the database and came back as a 500 (SQLite's
// tokenizer, PostgreSQL's text type). Now any declared parameter holding
// them is a 422 before the operation runs.
func TestUnsafeParametersAreRefused(t *testing.T) {
	s := testutil.NewServer(t)
	admin := s.SeedAccount(t, "admin", models.RoleAdmin)
	for _, path := range []string{
		"/v1/admin/users?q=%00",
		"/v1/admin/users?after=a%00b",
		"/v1/admin/audit?actor=%FF%FE",
		"/v1/admin/audit?target=%00",
		"/v1/users/ab%00",
		"/v1/users?prefix=%C3%28%C3%28",
	} {
		r := s.Do(t, "GET", path, admin.Token, nil)
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
	}
	// Well-formed UTF-8 beyond ASCII is no reason to refuse.
	if r := s.Do(t, "GET", "/v1/admin/users?q=%C3%A9t%C3%A9", admin.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("UTF-8 search: %d %s", r.StatusCode, r.Body)
	}
}
