package testutil

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"

	"github.com/sovereign-im/sovereign/api"
)

var (
	specOnce      sync.Once
	specValidator validator.Validator
	specErr       error
)

// SpecValidator returns a validator for the OpenAPI document the code
// generates (equal to the committed openapi.yaml: a test checks that).
func SpecValidator() (validator.Validator, error) {
	specOnce.Do(func() {
		raw, err := api.OpenAPI()
		if err != nil {
			specErr = fmt.Errorf("build spec: %w", err)
			return
		}
		doc, err := libopenapi.NewDocument(raw)
		if err != nil {
			specErr = fmt.Errorf("parse spec: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			specErr = fmt.Errorf("new validator: %v", errs)
			return
		}
		specValidator = v
	})
	return specValidator, specErr
}

// ValidatingTransport checks every response against the OpenAPI document
// and fails the test on a mismatch. Streams (text/event-stream) and the
// documents outside the API (docs, admin UI) pass through unchecked.
type ValidatingTransport struct {
	T    testing.TB
	Base http.RoundTripper
	mu   sync.Mutex
}

// RoundTrip implements http.RoundTripper.
func (vt *ValidatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := vt.Base.RoundTrip(req)
	if err != nil || !isAPIPath(req.URL.Path) || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	v, verr := SpecValidator()
	if verr != nil {
		vt.T.Errorf("openapi validator: %v", verr)
		return resp, nil
	}
	check := resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	creq := req.Clone(req.Context())
	creq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vt.mu.Lock()
	ok, errs := v.ValidateHttpResponse(creq, check)
	vt.mu.Unlock()
	// A request for a path the API does not have (a negative test) has no
	// response schema to check.
	if !ok && len(errs) > 0 && errs[0].ValidationType == "path" {
		ok = true
	}
	if !ok {
		var b strings.Builder
		for _, e := range errs {
			fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				fmt.Fprintf(&b, "\n      %s (%s)", se.Reason, se.FieldPath)
			}
		}
		vt.T.Errorf("response to %s %s (status %d) does not match openapi.yaml:%s\nbody: %.500s", req.Method, req.URL.Path, resp.StatusCode, b.String(), body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func isAPIPath(p string) bool {
	return !strings.HasPrefix(p, "/docs") && !strings.HasPrefix(p, "/admin") && !strings.HasPrefix(p, "/openapi")
}

// ValidateComponent fails the test unless payload (JSON) matches the
// schema named name in the OpenAPI document's components, e.g. a notice
// payload, which travels base64 inside an event and so escapes the
// ValidatingTransport.
func ValidateComponent(t testing.TB, name string, payload []byte) {
	t.Helper()
	raw, err := api.OpenAPI()
	if err != nil {
		t.Fatalf("build spec: %v", err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build spec model: %v", err)
	}
	proxy, ok := model.Model.Components.Schemas.Get(name)
	if !ok {
		t.Fatalf("no component schema %s", name)
	}
	sv := schema_validation.NewSchemaValidator()
	if ok, errs := sv.ValidateSchemaBytes(proxy.Schema(), payload); !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
			for _, se := range e.SchemaValidationErrors {
				msgs = append(msgs, se.Reason)
			}
		}
		t.Errorf("%s does not match schema %s: %s", payload, name, strings.Join(msgs, "; "))
	}
}
