package api_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sovereign-im/sovereign/api"
	"github.com/sovereign-im/sovereign/testutil"
)

// TestOpenAPIDrift fails when the committed openapi.yaml differs from what
// the code generates. Fix with `make openapi` (and `make clients`).
func TestOpenAPIDrift(t *testing.T) {
	got, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi.yaml is stale: run `make openapi` and commit the result")
	}
}
