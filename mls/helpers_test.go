package mls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorsDir returns the directory holding the shared RFC 9420 test vectors,
// or "" if it is absent. It honours SOVEREIGN_MLS_VECTORS, else walks up from
// the package directory to the module root (the directory with go.mod) and
// looks for ../shared/mls-test-vectors beside it.
func vectorsDir() string {
	if d := os.Getenv("SOVEREIGN_MLS_VECTORS"); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "mls-test-vectors")
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// loadVectors decodes the JSON file name from the shared vectors into v, or
// skips the test when the vectors are absent.
func loadVectors(tb testing.TB, name string, v any) {
	tb.Helper()
	d := vectorsDir()
	if d == "" {
		tb.Skip("shared MLS test vectors not found: set SOVEREIGN_MLS_VECTORS or place them in ../shared/mls-test-vectors beside the module root")
	}
	b, err := os.ReadFile(filepath.Join(d, name))
	if err != nil {
		tb.Skipf("shared MLS test vector %s not readable: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// hexBytes is a JSON string of hex digits.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// fixture is one entry of testdata/tsmls/index.json (see tools/mlsfixtures).
type fixture struct {
	Name              string   `json:"name"`
	File              string   `json:"file"`
	Size              int      `json:"size"`
	WireFormat        string   `json:"wireFormat"`
	CipherSuite       uint16   `json:"cipherSuite"`
	Ref               hexBytes `json:"ref"`
	CredentialType    string   `json:"credentialType"`
	Identity          string   `json:"identity"`
	Certificates      []string `json:"certificates"`
	NotBefore         uint64   `json:"notBefore,string"`
	NotAfter          uint64   `json:"notAfter,string"`
	GroupID           hexBytes `json:"groupId"`
	Epoch             uint64   `json:"epoch"`
	ContentType       string   `json:"contentType"`
	SenderType        string   `json:"senderType"`
	LeafIndex         uint32   `json:"leafIndex"`
	AuthenticatedData hexBytes `json:"authenticatedData"`
	NewMembers        []string `json:"newMembers"`
	AddressedKP       string   `json:"addressedKeyPackage"`
	Signer            uint32   `json:"signer"`

	bytes []byte
}

// loadFixtures reads the committed ts-mls fixtures (always available).
func loadFixtures(tb testing.TB) map[string]*fixture {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tsmls", "index.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var idx struct {
		Fixtures []*fixture `json:"fixtures"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		tb.Fatal(err)
	}
	out := make(map[string]*fixture, len(idx.Fixtures))
	for _, f := range idx.Fixtures {
		if f.bytes, err = os.ReadFile(filepath.Join("testdata", "tsmls", f.File)); err != nil {
			tb.Fatal(err)
		}
		out[f.Name] = f
	}
	return out
}

// fixture returns the named fixture or fails.
func mustFixture(tb testing.TB, fs map[string]*fixture, name string) *fixture {
	tb.Helper()
	f, ok := fs[name]
	if !ok {
		tb.Fatalf("fixture %q missing from testdata/tsmls/index.json", name)
	}
	return f
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
