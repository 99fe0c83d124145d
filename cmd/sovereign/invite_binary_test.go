package main

import (
	"bytes"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	logCodeRE = regexp.MustCompile(`invite_code=([a-z2-7-]+)`)
	cliCodeRE = regexp.MustCompile(`(?m)^Invite code: ([a-z2-7-]+)$`)
)

func stop(t *testing.T, p *Process) {
	t.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}

func registerBegin(t *testing.T, url, code, username string) int {
	t.Helper()
	body := `{"invite_code":"` + code + `","username":"` + username + `","display_name":"Root"}`
	resp, err := http.Post(url+"/v1/auth/register/begin", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFirstStartAdminInviteAndInviteCommand: the first start prints a
// one-time admin invite; the next start only says one exists and how to
// make another; `sovereign invite --admin` works while the server runs and
// its code is accepted.
func TestFirstStartAdminInviteAndInviteCommand(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startBinary(t, dataDir)
	time.Sleep(100 * time.Millisecond)
	m := logCodeRE.FindStringSubmatch(p.logs.String())
	if m == nil || !strings.Contains(p.logs.String(), "/invite?role=admin#"+m[1]) {
		t.Fatalf("first start printed no admin invite:\n%s", p.logs.String())
	}
	if got := registerBegin(t, p.URL, m[1], "root"); got != http.StatusOK {
		t.Fatalf("admin invite from the log: register begin = %d", got)
	}
	stop(t, p)

	p = startBinary(t, dataDir)
	time.Sleep(100 * time.Millisecond)
	logs := p.logs.String()
	if logCodeRE.MatchString(logs) || strings.Contains(logs, m[1]) {
		t.Fatalf("second start printed an invite code again:\n%s", logs)
	}
	if !strings.Contains(logs, "an admin invite exists") || !strings.Contains(logs, "sovereign invite --admin") {
		t.Fatalf("second start does not explain the admin invite:\n%s", logs)
	}

	var out, errb bytes.Buffer
	cmd := exec.Command(sovereignBinary(t), "invite", "--data-dir", dataDir, "--admin", "--uses", "2", "--expires", "1h")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("invite: %v\n%s", err, errb.String())
	}
	cm := cliCodeRE.FindStringSubmatch(out.String())
	if cm == nil || !strings.Contains(out.String(), "Role:        admin") || !strings.Contains(out.String(), "/invite?role=admin#"+cm[1]) {
		t.Fatalf("invite output:\n%s", out.String())
	}
	if got := registerBegin(t, p.URL, cm[1], "root"); got != http.StatusOK {
		t.Fatalf("CLI invite: register begin = %d", got)
	}

	bad := exec.Command(sovereignBinary(t), "invite", "--data-dir", dataDir, "--uses", "0")
	if err := bad.Run(); err == nil || bad.ProcessState.ExitCode() != 2 {
		t.Fatalf("invite --uses 0: %v", err)
	}
	stop(t, p)
}
