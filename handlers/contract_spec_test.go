package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sovereign-im/sovereign/api"
)

// The contract walk (TestContractHoldsUnderHostileInput) reads the
// OpenAPI document the code generates (equal to the committed openapi.yaml:
// api.TestOpenAPIDrift) as plain YAML and derives every request it sends
// from it, so a new operation, parameter or body field is walked without
// editing the test.

type specDoc struct {
	Paths      map[string]map[string]*specOp `yaml:"paths"`
	Components struct {
		Schemas map[string]*specSchema `yaml:"schemas"`
	} `yaml:"components"`
}

type specOp struct {
	OperationID string                `yaml:"operationId"`
	Tags        []string              `yaml:"tags"`
	Security    []map[string][]string `yaml:"security"`
	Parameters  []specParam           `yaml:"parameters"`
	RequestBody *struct {
		Required bool `yaml:"required"`
		Content  map[string]struct {
			Schema *specSchema `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]any `yaml:"responses"`

	method, path string
}

type specParam struct {
	Name     string      `yaml:"name"`
	In       string      `yaml:"in"`
	Required bool        `yaml:"required"`
	Schema   *specSchema `yaml:"schema"`
}

type specSchema struct {
	Ref             string                 `yaml:"$ref"`
	Type            any                    `yaml:"type"` // a string, or a list with "null"
	Format          string                 `yaml:"format"`
	ContentEncoding string                 `yaml:"contentEncoding"`
	Enum            []any                  `yaml:"enum"`
	Minimum         *float64               `yaml:"minimum"`
	Maximum         *float64               `yaml:"maximum"`
	MinLength       *int                   `yaml:"minLength"`
	MaxLength       *int                   `yaml:"maxLength"`
	Pattern         string                 `yaml:"pattern"`
	Default         any                    `yaml:"default"`
	Examples        []any                  `yaml:"examples"`
	Properties      map[string]*specSchema `yaml:"properties"`
	Required        []string               `yaml:"required"`
	Items           *specSchema            `yaml:"items"`
}

// loadSpec parses the generated document and lists its operations in a
// stable order (by path, then method).
func loadSpec(t *testing.T) (*specDoc, []*specOp) {
	t.Helper()
	raw, err := api.OpenAPI()
	if err != nil {
		t.Fatalf("build spec: %v", err)
	}
	var doc specDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	var ops []*specOp
	for path, item := range doc.Paths {
		for method, op := range item {
			switch method {
			case "get", "put", "post", "patch", "delete":
			default:
				continue
			}
			op.method, op.path = strings.ToUpper(method), path
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return ops[i].method < ops[j].method
	})
	return &doc, ops
}

// resolve follows a $ref to components/schemas.
func (d *specDoc) resolve(s *specSchema) *specSchema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// typ is the schema's type without "null".
func (s *specSchema) typ() string {
	switch v := s.Type.(type) {
	case string:
		return v
	case []any:
		for _, x := range v {
			if x != "null" {
				return fmt.Sprint(x)
			}
		}
	}
	if s.Properties != nil {
		return "object"
	}
	return ""
}

func (s *specSchema) isBase64() bool {
	return s.typ() == "string" && (s.ContentEncoding == "base64" || s.Format == "byte")
}

// documented reports whether the operation lists status (or a default).
func (op *specOp) documented(status int) bool {
	if _, ok := op.Responses[fmt.Sprint(status)]; ok {
		return true
	}
	_, ok := op.Responses["default"]
	return ok
}

// takes reports whether the document lists contentType for op's body.
func (op *specOp) takes(contentType string) bool {
	if op.RequestBody == nil {
		return false
	}
	_, ok := op.RequestBody.Content[contentType]
	return ok
}

func (op *specOp) bearer() bool {
	for _, m := range op.Security {
		if _, ok := m["bearer"]; ok {
			return true
		}
	}
	return false
}

func (op *specOp) admin() bool { return strings.HasPrefix(op.path, "/v1/admin/") }

// sample is a plausible value for a schema: what a well-behaved client
// would send, so that each hostile variant changes exactly one thing.
func (d *specDoc) sample(s *specSchema) any {
	s = d.resolve(s)
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	if len(s.Examples) > 0 {
		return s.Examples[0]
	}
	if s.Default != nil {
		return s.Default
	}
	switch s.typ() {
	case "object":
		obj := map[string]any{}
		for _, name := range s.Required {
			obj[name] = d.sample(s.Properties[name])
		}
		return obj
	case "array":
		return []any{}
	case "integer", "number":
		n := 1.0
		if s.Minimum != nil && *s.Minimum > n {
			n = *s.Minimum
		}
		if s.Maximum != nil && *s.Maximum < n {
			n = *s.Maximum
		}
		return n
	case "boolean":
		return false
	case "string":
		if s.isBase64() {
			return "AAAAAAAAAAAAAAAAAAAAAA" // 16 zero bytes
		}
		if s.Format == "date-time" {
			return "2026-12-01T00:00:00Z"
		}
		n := 2
		if s.MinLength != nil && *s.MinLength > n {
			n = *s.MinLength
		}
		return strings.Repeat("a", n)
	}
	return "a"
}

// bodyVariant is one hostile JSON body.
type bodyVariant struct {
	name string
	raw  []byte
}

// hostileBodies are the JSON bodies sent to an operation whose body schema
// is s: broken syntax and the wrong shape at the top, then, for every
// property of the object and of the objects within it (to a depth of
// three), the wrong type, out-of-range numbers, bad base64, invalid
// UTF-8, control characters and strings or arrays far beyond any limit,
// each in an otherwise well-formed body.
func (d *specDoc) hostileBodies(s *specSchema) []bodyVariant {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	out := []bodyVariant{
		{"empty body", []byte{}},
		{"malformed JSON", []byte(`{"a":`)},
		{"trailing garbage", []byte(`{} {}`)},
		{"not UTF-8", []byte("{\"\xff\xfe\":\"\xff\xfe\"}")},
		{"null", []byte(`null`)},
		{"a string", []byte(`"x"`)},
		{"a number", []byte(`12345678901234567890123`)},
		{"an array", []byte(`[]`)},
		{"deep nesting", []byte(deep)},
		{"empty object", []byte(`{}`)},
	}
	for _, v := range d.valueVariants(s, "", 0) {
		raw, err := json.Marshal(v.value)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", v.name, err))
		}
		// Raw JSON the encoder cannot write (numbers beyond float64,
		// bytes that are not UTF-8) stands in a placeholder string.
		for ph, lit := range rawLiterals {
			raw = bytes.ReplaceAll(raw, []byte(`"`+ph+`"`), []byte(lit))
		}
		out = append(out, bodyVariant{"body" + v.name, raw})
	}
	return out
}

// rawLiterals are JSON texts json.Marshal cannot produce, by placeholder.
var rawLiterals = map[string]string{
	"§BEYOND_INT64§": "92233720368547758080",
	"§1E308§":        "1e308",
	"§NOT_UTF8§":     "\"\xff\xfe\xfd\"",
}

type valueVariant struct {
	name  string
	value any
}

// valueVariants are hostile replacements for a value of schema s at path
// name: each is the whole value with exactly one thing wrong.
func (d *specDoc) valueVariants(s *specSchema, name string, depth int) []valueVariant {
	s = d.resolve(s)
	if s == nil {
		return nil
	}
	v := func(what string, x any) valueVariant { return valueVariant{name + ": " + what, x} }
	var out []valueVariant
	if name != "" {
		out = append(out, v("null", nil))
	}
	switch s.typ() {
	case "string":
		out = append(out,
			v("number for string", 42),
			v("object for string", map[string]any{"a": 1}),
			v("100k string", strings.Repeat("A", 100_000)),
			v("control characters", "a\x00b\u202e\x1b[31m"),
			v("not UTF-8", "§NOT_UTF8§"),
		)
		if s.isBase64() {
			out = append(out, v("bad base64", "!!not*base64!!"), v("base64 with bad padding", "QUJD=A"))
		}
		if s.Format == "date-time" {
			out = append(out, v("bad date-time", "yesterday"))
		}
	case "integer", "number":
		out = append(out,
			v("string for number", "1"),
			v("negative", -1),
			v("most negative int64", math.MinInt64),
			v("beyond int64", "§BEYOND_INT64§"),
			v("1e308", "§1E308§"),
			v("fraction", 1.5),
		)
	case "boolean":
		out = append(out, v("string for boolean", "true"))
	case "array":
		out = append(out,
			v("string for array", "x"),
			v("array of wrong items", []any{map[string]any{"zz": []any{}}, 7, "x", nil}),
			v("10k items", make([]any, 10_000)),
		)
		if depth < 3 && s.Items != nil {
			for _, iv := range d.valueVariants(s.Items, name+"[0]", depth+1) {
				out = append(out, valueVariant{iv.name, []any{iv.value}})
			}
		}
	case "object":
		out = append(out, v("array for object", []any{1}), v("string for object", "x"))
		base, _ := d.sample(s).(map[string]any)
		with := func(prop string, x any) map[string]any {
			m := make(map[string]any, len(base)+1)
			for k, y := range base {
				m[k] = y
			}
			m[prop] = x
			return m
		}
		out = append(out, valueVariant{name + ": unknown field", with("zz_unknown_field", 1)})
		if depth >= 3 {
			return out
		}
		props := make([]string, 0, len(s.Properties))
		for prop := range s.Properties {
			props = append(props, prop)
		}
		sort.Strings(props)
		for _, prop := range props {
			for _, pv := range d.valueVariants(s.Properties[prop], name+"."+prop, depth+1) {
				out = append(out, valueVariant{pv.name, with(prop, pv.value)})
			}
		}
	}
	return out
}

// hostileValues are values for a path, query or header parameter of
// schema s: the wrong type, out of range, far too long, and bytes no
// well-behaved client sends (escaped NUL, invalid UTF-8, escaped slashes,
// bidi controls). Path values are sent as they are written here (already
// escaped); query values are escaped by the walker. A path with a broken
// escape (%ZZ) is not among them: net/http refuses it with a plain-text 400
// before any handler runs, and a bare escaped slash (%2F) makes the path
// one of no operation (the server's 404 not_found).
func hostileValues(in string, s *specSchema) []string {
	long := strings.Repeat("A", 5000)
	if in == "path" {
		return []string{long, "%00", "%C3%28", "%FF%FE", "..%2F..%2Fadmin", "a%2Fb", "%E2%80%AE", "-1", "%20", "'%20OR%201=1--", "%25"}
	}
	if in == "header" {
		return []string{long, "\xff\xfe", "-1", "99999999999999999999999", "not,a;valid value"}
	}
	vals := []string{"", long, "\x00", "\xff\xfe", "-1"}
	switch s.typ() {
	case "integer", "number":
		vals = append(vals, "abc", "1.5", "1e99", "99999999999999999999999", "-9223372036854775809")
	case "boolean":
		vals = append(vals, "maybe", "2")
	case "string":
		if s.Format == "date-time" {
			vals = append(vals, "yesterday", "2026-13-45T99:99:99Z")
		}
	}
	return vals
}
