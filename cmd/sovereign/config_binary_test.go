package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/testutil"
)

var urlRE = regexp.MustCompile(`msg="sovereign listening" addr=\S+ url=(\S+) docs=(\S+)`)

// attach returns test helpers for a running binary whose relying party is
// localhost with origin url.
func attach(t *testing.T, url string) *testutil.Server {
	t.Helper()
	cfg := config.Default()
	cfg.RPOrigins = []string{url}
	config.Derive(&cfg)
	return testutil.Attach(t, url, cfg)
}

// TestChangingOnlyThePortKeepsPasskeysWorking: with only --listen given,
// the origins, the printed URLs and the invite link follow the port, and a
// real passkey registration on that origin succeeds.
func TestChangingOnlyThePortKeepsPasskeysWorking(t *testing.T) {
	p := startBinary(t, filepath.Join(t.TempDir(), "data"))
	port := p.URL[strings.LastIndex(p.URL, ":")+1:]
	want := "http://localhost:" + port
	m := urlRE.FindStringSubmatch(p.logs.String())
	if m == nil || m[1] != want || m[2] != want+"/docs" {
		t.Fatalf("start-up log does not print %s:\n%s", want, p.logs.String())
	}
	code := logCodeRE.FindStringSubmatch(p.logs.String())
	if code == nil || !strings.Contains(p.logs.String(), `link="`+want+"/invite?role=admin#"+code[1]+`"`) {
		t.Fatalf("admin invite link does not point at %s:\n%s", want, p.logs.String())
	}
	s := attach(t, want) // what a browser opens
	acc, _ := s.Register(t, code[1], "root")
	if acc.Token == "" {
		t.Fatal("no session")
	}
	stop(t, p)
}

// TestInviteCommandReadsTheServersConfiguration: `sovereign invite` takes
// the server's --config, refuses to create a database where none is, and
// its invite is in the audit log with the command line as actor.
func TestInviteCommandReadsTheServersConfiguration(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "sovereign.yaml")
	if err := os.WriteFile(conf, []byte("data-dir: "+dataDir+"\nlisten: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// No database yet: refused, and nothing created.
	elsewhere := t.TempDir()
	cmd := exec.Command(sovereignBinary(t), "invite")
	cmd.Dir = elsewhere
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("invite without a database: %v", err)
	}
	if !strings.Contains(errb.String(), "no database at") || !strings.Contains(errb.String(), "--data-dir") || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("invite without a database said %q", errb.String())
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("invite created %v", entries)
	}

	p := startBinary(t, dataDir, "--config", conf)
	s := attach(t, "http://localhost"+p.URL[strings.LastIndex(p.URL, ":"):])
	code := logCodeRE.FindStringSubmatch(p.logs.String())
	if code == nil {
		t.Fatalf("no admin invite in the log:\n%s", p.logs.String())
	}
	admin, _ := s.Register(t, code[1], "root")

	var out bytes.Buffer
	cmd = exec.Command(sovereignBinary(t), "invite", "--uses", "3")
	cmd.Dir = elsewhere
	cmd.Env = append(os.Environ(), "SOVEREIGN_CONFIG="+conf)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("invite: %v\n%s", err, errb.String())
	}
	cm := cliCodeRE.FindStringSubmatch(out.String())
	if cm == nil {
		t.Fatalf("invite output:\n%s", out.String())
	}
	if got := registerBegin(t, s.URL, cm[1], "alice"); got != http.StatusOK {
		t.Fatalf("CLI invite refused by the running server: %d", got)
	}

	r := s.Do(t, http.MethodGet, "/v1/admin/audit?action=invite.create", admin.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("audit = %d %s", r.StatusCode, r.Body)
	}
	var page struct {
		Entries []struct {
			Action string         `json:"action"`
			Actor  any            `json:"actor"`
			Detail map[string]any `json:"detail"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0].Actor != nil || page.Entries[0].Detail["via"] != "command line" ||
		page.Entries[0].Detail["command"] != "sovereign invite --uses 3" || page.Entries[0].Detail["uses"] != float64(3) {
		t.Fatalf("audit entries: %s", r.Body)
	}
	stop(t, p)
}
