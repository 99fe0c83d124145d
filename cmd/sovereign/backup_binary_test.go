package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/testutil"
)

// runCLI runs the binary and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sovereignBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// localOrigin is the origin a browser uses for a binary listening on url.
func localOrigin(url string) string { return "http://localhost" + url[strings.LastIndex(url, ":"):] }

// TestBackupUnderWriteLoadThenRestoreAndServe: `sovereign backup` taken
// while senders keep writing passes integrity_check, is 0600 and holds
// every message acknowledged before it began; `sovereign restore` puts it
// into an empty data directory, refuses a full one, and a server on the
// restored directory serves the same accounts (the old session token and
// a passkey sign-in) and messages.
func TestBackupUnderWriteLoadThenRestoreAndServe(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, filepath.Join(dir, "data"), "--messages-per-minute", "1000000")
	origin := localOrigin(p.URL)
	s := attach(t, origin)
	code := logCodeRE.FindStringSubmatch(p.logs.String())
	if code == nil {
		t.Fatalf("no admin invite:\n%s", p.logs.String())
	}
	root, pk := s.Register(t, code[1], "root")
	c := bench.NewClient(origin, 8)
	ctx := context.Background()
	acc := bench.Account{UserID: root.UserID, DeviceID: root.DeviceID, Token: root.Token, Username: "root"}
	g, err := bench.CreateGroup(ctx, c, acc)
	if err != nil {
		t.Fatal(err)
	}

	// Senders write until told to stop; each records when its message was
	// acknowledged.
	type ack struct {
		seq int64
		at  time.Time
	}
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	stopSending := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopSending:
					return
				default:
				}
				r, err := bench.Send(ctx, c, g, acc, bench.MessageBody(g, nil, 512))
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{r.Seq, time.Now()})
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acks) >= 200 })

	backupFile := filepath.Join(dir, "backups", "sovereign.db")
	if err := os.MkdirAll(filepath.Dir(backupFile), 0o700); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	rc, out, errOut := runCLI(t, "backup", "--data-dir", filepath.Join(dir, "data"), "--to", backupFile)
	ended := time.Now()
	if rc != 0 || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup: exit %d\n%s%s", rc, out, errOut)
	}
	waitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return acks[len(acks)-1].at.After(ended) })
	close(stopSending)
	wg.Wait()

	fi, err := os.Stat(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %04o, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(backupFile)); len(entries) != 1 {
		t.Fatalf("backup left more than its file: %v", entries)
	}
	db, err := sql.Open("sqlite", "file:"+backupFile+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	inBackup := map[int64]bool{}
	rows, err := db.Query("SELECT seq FROM events")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			t.Fatal(err)
		}
		inBackup[seq] = true
	}
	rows.Close()
	db.Close()
	before, after := 0, 0
	for _, a := range acks {
		switch {
		case a.at.Before(began):
			before++
			if !inBackup[a.seq] {
				t.Fatalf("message seq %d acknowledged before the backup began is missing from it", a.seq)
			}
		case a.at.After(ended):
			after++
		}
	}
	t.Logf("%d messages acknowledged before the backup began (all in it), %d during it, %d after; backup took %v (%s)",
		before, len(acks)-before-after, after, ended.Sub(began).Round(time.Millisecond), strings.TrimSpace(out))
	if before < 200 || after == 0 {
		t.Fatalf("the load did not surround the backup: %d before, %d after", before, after)
	}
	stop(t, p)

	// Restore refuses a data directory that holds a database.
	rc, _, errOut = runCLI(t, "restore", "--data-dir", filepath.Join(dir, "data"), "--from", backupFile)
	if rc != 2 || !strings.Contains(errOut, "empty data directory") {
		t.Fatalf("restore over a database: exit %d %q", rc, errOut)
	}
	restored := filepath.Join(dir, "restored")
	rc, out, errOut = runCLI(t, "restore", "--data-dir", restored, "--from", backupFile)
	if rc != 0 {
		t.Fatalf("restore: exit %d\n%s%s", rc, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(restored, "sovereign.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored database: %v %v", fi, err)
	}

	p2 := startBinary(t, restored)
	origin2 := localOrigin(p2.URL)
	s2 := attach(t, origin2)
	if r := s2.Do(t, http.MethodGet, "/v1/me", root.Token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("the old session after restore: /v1/me = %d %s", r.StatusCode, r.Body)
	}
	pk.RP.Origin = origin2
	again := s2.Login(t, pk, testutil.LoginOptions{Username: "root"})
	if again.UserID != root.UserID {
		t.Fatalf("passkey sign-in after restore: user %s, want %s", again.UserID, root.UserID)
	}
	var feed struct {
		Events []struct {
			Seq int64 `json:"seq"`
		} `json:"events"`
	}
	q := url.Values{"after": {"0"}, "limit": {"500"}}
	r := s2.Do(t, http.MethodGet, "/v1/sync?"+q.Encode(), root.Token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sync after restore = %d %s", r.StatusCode, r.Body)
	}
	r.JSON(t, &feed)
	if len(feed.Events) == 0 || !inBackup[feed.Events[0].Seq] {
		t.Fatalf("restored server does not serve the backed-up messages: %s", r.Body)
	}
	stop(t, p2)
}

// TestBackupCarriesAttachments: `sovereign backup` copies the file of every
// complete attachment next to the database (FILE.attachments/, 0700, files
// 0600, byte-identical) and not the upload in progress; `sovereign restore`
// refuses a data directory whose attachments/ holds files, puts the files
// into an empty one, and a server on it serves the attachment's bytes
// (with a range) to the member.
func TestBackupCarriesAttachments(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, filepath.Join(dir, "data"))
	origin := localOrigin(p.URL)
	s := attach(t, origin)
	code := logCodeRE.FindStringSubmatch(p.logs.String())
	if code == nil {
		t.Fatalf("no admin invite:\n%s", p.logs.String())
	}
	root, _ := s.Register(t, code[1], "root")
	c := bench.NewClient(origin, 4)
	acc := bench.Account{UserID: root.UserID, DeviceID: root.DeviceID, Token: root.Token, Username: "root"}
	g, err := bench.CreateGroup(context.Background(), c, acc)
	if err != nil {
		t.Fatal(err)
	}
	gid := base64.RawURLEncoding.EncodeToString(g.ID)
	declare := func(size int) string {
		r := s.Do(t, http.MethodPost, "/v1/attachments", root.Token, map[string]any{"group_id": gid, "size": size})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("declare: %d %s", r.StatusCode, r.Body)
		}
		var a struct {
			ID string `json:"id"`
		}
		r.JSON(t, &a)
		return a.ID
	}
	put := func(id string, offset int, b []byte) {
		r := s.Do(t, http.MethodPut, fmt.Sprintf("/v1/attachments/%s?offset=%d", id, offset), root.Token, b, "Content-Type", "application/octet-stream")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("upload: %d %s", r.StatusCode, r.Body)
		}
	}
	blob := make([]byte, 300_000)
	_, _ = rand.Read(blob)
	done := declare(len(blob))
	put(done, 0, blob[:100_000])
	put(done, 100_000, blob[100_000:])
	partial := declare(50_000)
	put(partial, 0, blob[:20_000])

	backupFile := filepath.Join(dir, "backups", "sovereign.db")
	if err := os.MkdirAll(filepath.Dir(backupFile), 0o700); err != nil {
		t.Fatal(err)
	}
	rc, out, errOut := runCLI(t, "backup", "--data-dir", filepath.Join(dir, "data"), "--to", backupFile)
	if rc != 0 || !strings.Contains(out, "(1 files, 300000 bytes)") {
		t.Fatalf("backup: exit %d\n%s%s", rc, out, errOut)
	}
	files := backupFile + ".attachments"
	if fi, err := os.Stat(files); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("attachments directory of the backup: %v %v", fi, err)
	}
	entries, err := os.ReadDir(files)
	if err != nil || len(entries) != 1 || entries[0].Name() != done {
		t.Fatalf("the backup's attachment files = %v (%v), want only the complete %s", entries, err, done)
	}
	if fi, _ := entries[0].Info(); fi.Mode().Perm() != 0o600 {
		t.Fatalf("attachment file mode %04o, want 0600", fi.Mode().Perm())
	}
	if got, err := os.ReadFile(filepath.Join(files, done)); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("the backed-up file differs from the upload (%v)", err)
	}
	// A second backup to the same name is refused (the database file exists).
	if rc, _, _ := runCLI(t, "backup", "--data-dir", filepath.Join(dir, "data"), "--to", backupFile); rc == 0 {
		t.Fatal("a backup over an existing one succeeded")
	}
	stop(t, p)

	// Restore refuses a data directory whose attachments/ holds files.
	crowded := filepath.Join(dir, "crowded")
	if err := os.MkdirAll(filepath.Join(crowded, "attachments"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crowded, "attachments", "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, _, errOut := runCLI(t, "restore", "--data-dir", crowded, "--from", backupFile); rc != 2 || !strings.Contains(errOut, "attachments") {
		t.Fatalf("restore over attachment files: exit %d %q", rc, errOut)
	}
	if _, err := os.Stat(filepath.Join(crowded, "sovereign.db")); err == nil {
		t.Fatal("a refused restore wrote the database")
	}

	restored := filepath.Join(dir, "restored")
	rc, out, errOut = runCLI(t, "restore", "--data-dir", restored, "--from", backupFile)
	if rc != 0 || !strings.Contains(out, "restored 1 attachment files (300000 bytes)") {
		t.Fatalf("restore: exit %d\n%s%s", rc, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(restored, "attachments", done)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored attachment file: %v %v", fi, err)
	}
	p2 := startBinary(t, restored)
	s2 := attach(t, localOrigin(p2.URL))
	r := s2.Do(t, http.MethodGet, "/v1/attachments/"+done, root.Token, nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(r.Body, blob) {
		t.Fatalf("download after restore: %d, %d bytes", r.StatusCode, len(r.Body))
	}
	r = s2.Do(t, http.MethodGet, "/v1/attachments/"+done, root.Token, nil, "Range", "bytes=299990-")
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(r.Body, blob[299_990:]) {
		t.Fatalf("ranged download after restore: %d %q", r.StatusCode, r.Body)
	}
	stop(t, p2)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
