package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/testutil"
)

// TestDocsLinkToTheClientsGuide: the API description that /docs renders
// links to the SDK getting-started, which the binary serves as it is in
// docs/clients.md.
func TestDocsLinkToTheClientsGuide(t *testing.T) {
	s := testutil.NewServer(t)
	spec := s.Do(t, http.MethodGet, "/openapi.yaml", "", nil)
	if !strings.Contains(string(spec.Body), "(/docs/clients.md)") {
		t.Fatal("the API description does not link to /docs/clients.md")
	}
	resp, err := http.Get(s.URL + "/docs/clients.md")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || string(body) != string(want) {
		t.Fatalf("/docs/clients.md = %d %q, %d bytes (want %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(want))
	}
	if r, _ := http.Post(s.URL+"/docs/clients.md", "text/plain", nil); r == nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /docs/clients.md: %v", r)
	}
}
