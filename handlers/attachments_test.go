package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

type attachFixture struct {
	s       *testutil.Server
	alice   testutil.Account
	bob     testutil.Account
	eve     testutil.Account
	groupID []byte
	gid     string
	feed    testutil.Feed
}

func newAttachFixture(t *testing.T, mutate ...func(*config.Config)) *attachFixture {
	t.Helper()
	s := testutil.NewServer(t, mutate...)
	f := &attachFixture{s: s, feed: testutil.Feed{St: s.Store}, groupID: []byte("attachment-test-group")}
	f.alice = s.SeedAccount(t, "alice", models.RoleMember)
	f.bob = s.SeedAccount(t, "bob", models.RoleMember)
	f.eve = s.SeedAccount(t, "eve", models.RoleMember)
	f.gid = encodeID(f.groupID)
	if err := f.feed.CreateGroup(context.Background(), f.groupID, f.alice.DeviceID, f.bob.DeviceID); err != nil {
		t.Fatal(err)
	}
	return f
}

func encodeID(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (f *attachFixture) create(t *testing.T, acc testutil.Account, size int64) handlers.AttachmentBody {
	t.Helper()
	r := f.s.Do(t, "POST", "/v1/attachments", acc.Token, map[string]any{"group_id": f.gid, "size": size})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create attachment: %d %s", r.StatusCode, r.Body)
	}
	var a handlers.AttachmentBody
	r.JSON(t, &a)
	return a
}

func (f *attachFixture) put(t *testing.T, acc testutil.Account, id string, offset int, b []byte) *testutil.Response {
	t.Helper()
	return f.s.Do(t, "PUT", "/v1/attachments/"+id+"?offset="+strconv.Itoa(offset), acc.Token, b, "Content-Type", "application/octet-stream")
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestAttachmentUploadDownloadRange(t *testing.T) {
	f := newAttachFixture(t)
	data := randomBytes(300_000)
	a := f.create(t, f.alice, int64(len(data)))
	if a.Offset != 0 || a.Complete || a.UploadURL != "/v1/attachments/"+a.ID {
		t.Fatalf("created: %+v", a)
	}
	// Not downloadable while incomplete.
	if r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("incomplete download: %d", r.StatusCode)
	}
	r := f.put(t, f.alice, a.ID, 0, data[:100_000])
	var st handlers.AttachmentBody
	r.JSON(t, &st)
	if r.StatusCode != 200 || st.Offset != 100_000 || st.Complete {
		t.Fatalf("first part: %d %+v", r.StatusCode, st)
	}
	// Content-Range form for the rest.
	r = f.s.Do(t, "PUT", "/v1/attachments/"+a.ID, f.alice.Token, data[100_000:], "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("bytes 100000-%d/%d", len(data)-1, len(data)))
	r.JSON(t, &st)
	if r.StatusCode != 200 || !st.Complete || st.Offset != int64(len(data)) {
		t.Fatalf("last part: %d %s", r.StatusCode, r.Body)
	}
	// The file is 0600 and holds exactly the uploaded bytes.
	path := filepath.Join(f.s.Config.AttachmentsDir(), a.ID)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("blob file: %v %v", fi, err)
	}
	if dfi, _ := os.Stat(f.s.Config.AttachmentsDir()); dfi.Mode().Perm() != 0o700 {
		t.Fatalf("attachments directory mode %v", dfi.Mode())
	}

	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil)
	if r.StatusCode != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("download: %d, %d bytes", r.StatusCode, len(r.Body))
	}
	etag := r.Header.Get("ETag")
	if etag != `"`+a.ID+`"` || r.Header.Get("Cache-Control") != "private, max-age=31536000, immutable" ||
		r.Header.Get("Accept-Ranges") != "bytes" || r.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("headers: %v", r.Header)
	}
	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil, "Range", "bytes=1000-1999")
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(r.Body, data[1000:2000]) ||
		r.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(data)) {
		t.Fatalf("range: %d %v", r.StatusCode, r.Header)
	}
	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil, "Range", "bytes=-10")
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(r.Body, data[len(data)-10:]) {
		t.Fatalf("suffix range: %d", r.StatusCode)
	}
	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil, "Range", fmt.Sprintf("bytes=%d-", len(data)+5))
	if r.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", r.StatusCode)
	}
	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil, "If-None-Match", etag)
	if r.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r.StatusCode)
	}
	// Putting again after completion: 409 unless it is the final offset.
	if r := f.put(t, f.alice, a.ID, 0, data[:10]); r.StatusCode != http.StatusConflict {
		t.Fatalf("put after completion: %d", r.StatusCode)
	}
}

func TestAttachmentOffsetsAndSizes(t *testing.T) {
	f := newAttachFixture(t)
	a := f.create(t, f.alice, 1000)
	if r := f.put(t, f.alice, a.ID, 0, randomBytes(400)); r.StatusCode != 200 {
		t.Fatalf("put: %d", r.StatusCode)
	}
	r := f.put(t, f.alice, a.ID, 100, randomBytes(10))
	var p handlers.Problem
	r.JSON(t, &p)
	if r.StatusCode != http.StatusConflict || p.UploadOffset == nil || *p.UploadOffset != 400 || r.Header.Get("Upload-Offset") != "400" {
		t.Fatalf("wrong offset: %d %s", r.StatusCode, r.Body)
	}
	// More than the declared size: 413, nothing appended.
	if r := f.put(t, f.alice, a.ID, 400, randomBytes(601)); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("too many bytes: %d %s", r.StatusCode, r.Body)
	}
	r = f.s.Do(t, "GET", "/v1/attachments/"+a.ID+"/upload", f.alice.Token, nil)
	var st handlers.AttachmentBody
	r.JSON(t, &st)
	if st.Offset != 400 || st.Complete {
		t.Fatalf("status: %+v", st)
	}
	for _, cr := range []string{"bytes 400-409/999", "bytes 400-1000/1000", "bites 400-409/1000", "bytes 409-400/1000", "bytes 400-409"} {
		r := f.s.Do(t, "PUT", "/v1/attachments/"+a.ID, f.alice.Token, randomBytes(10), "Content-Range", cr)
		if r.StatusCode != http.StatusUnprocessableEntity && r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("Content-Range %q: %d", cr, r.StatusCode)
		}
	}
	// An empty attachment completes with an empty PUT.
	e := f.create(t, f.alice, 0)
	r = f.put(t, f.alice, e.ID, 0, nil)
	r.JSON(t, &st)
	if !st.Complete {
		t.Fatalf("empty attachment: %s", r.Body)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+e.ID, f.bob.Token, nil); r.StatusCode != 200 || len(r.Body) != 0 {
		t.Fatalf("empty download: %d", r.StatusCode)
	}
}

func countAttachments(t *testing.T, f *attachFixture) (rows int, files int) {
	t.Helper()
	if err := f.s.Store.ReadDB().NewRaw(`SELECT count(*) FROM attachments`).Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(f.s.Config.AttachmentsDir())
	return rows, len(ents)
}

func TestAttachmentLimitsAndQuotas(t *testing.T) {
	f := newAttachFixture(t, func(c *config.Config) {
		c.Limits.MaxAttachmentBytes = 200_000
		c.Limits.GroupQuotaBytes = 300_000
		c.Limits.UserQuotaBytes = 250_000
	})
	body := func(size int64) map[string]any { return map[string]any{"group_id": f.gid, "size": size} }
	if r := f.s.Do(t, "POST", "/v1/attachments", f.alice.Token, body(200_001)); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("above max: %d %s", r.StatusCode, r.Body)
	}
	f.create(t, f.alice, 150_000)
	// alice: 150k used of her 250k.
	r := f.s.Do(t, "POST", "/v1/attachments", f.alice.Token, body(150_000))
	var p handlers.Problem
	r.JSON(t, &p)
	if r.StatusCode != http.StatusInsufficientStorage || p.Code != "user_quota_exceeded" {
		t.Fatalf("user quota: %d %s", r.StatusCode, r.Body)
	}
	f.create(t, f.bob, 140_000)
	// The group holds 290k of 300k, with its messages.
	r = f.s.Do(t, "POST", "/v1/attachments", f.bob.Token, body(20_000))
	r.JSON(t, &p)
	if r.StatusCode != http.StatusInsufficientStorage || p.Code != "group_quota_exceeded" {
		t.Fatalf("group quota: %d %s", r.StatusCode, r.Body)
	}
	if rows, files := countAttachments(t, f); rows != 2 || files != 0 {
		t.Fatalf("stored after refusals: %d rows, %d files", rows, files)
	}
	var used int64
	if err := f.s.Store.ReadDB().NewRaw(`SELECT bytes_used FROM groups WHERE id = ?`, f.groupID).Scan(context.Background(), &used); err != nil || used != 290_000 {
		t.Fatalf("bytes_used %d %v", used, err)
	}
}

func TestAttachmentAccessRule(t *testing.T) {
	f := newAttachFixture(t)
	ctx := context.Background()
	data := randomBytes(5000)
	upload := func(acc testutil.Account) string {
		a := f.create(t, acc, int64(len(data)))
		if r := f.put(t, acc, a.ID, 0, data); r.StatusCode != 200 {
			t.Fatalf("upload: %d", r.StatusCode)
		}
		return a.ID
	}
	before := upload(f.alice)

	// A non-member gets one answer for a real id and a made-up one.
	fake := "00000000-0000-4000-8000-000000000000"
	for _, path := range []string{"/v1/attachments/%s", "/v1/attachments/%s/upload"} {
		r1 := f.s.Do(t, "GET", fmt.Sprintf(path, before), f.eve.Token, nil)
		r2 := f.s.Do(t, "GET", fmt.Sprintf(path, fake), f.eve.Token, nil)
		if r1.StatusCode != http.StatusForbidden || r2.StatusCode != http.StatusForbidden || !bytes.Equal(r1.Body, r2.Body) {
			t.Fatalf("%s: %d %s / %d %s", path, r1.StatusCode, r1.Body, r2.StatusCode, r2.Body)
		}
	}
	if r := f.put(t, f.eve, before, 0, data); r.StatusCode != http.StatusForbidden {
		t.Fatalf("non-member put: %d", r.StatusCode)
	}
	if r := f.s.Do(t, "POST", "/v1/attachments", f.eve.Token, map[string]any{"group_id": f.gid, "size": 10}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("non-member create: %d", r.StatusCode)
	}
	// Another member may not upload into alice's attachment.
	b := f.create(t, f.alice, 10)
	if r := f.put(t, f.bob, b.ID, 0, randomBytes(10)); r.StatusCode != http.StatusForbidden {
		t.Fatalf("other member put: %d", r.StatusCode)
	}

	// Bob is removed: what was uploaded while he was a member stays his to
	// download; what comes after is not.
	if _, err := f.feed.Remove(ctx, f.groupID, f.alice.DeviceID, f.bob.DeviceID); err != nil {
		t.Fatal(err)
	}
	after := upload(f.alice)
	if r := f.s.Do(t, "GET", "/v1/attachments/"+before, f.bob.Token, nil); r.StatusCode != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("removed member, earlier attachment: %d", r.StatusCode)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+after, f.bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("removed member, later attachment: %d", r.StatusCode)
	}
	// Eve joins now: a current member sees the group's attachments.
	if err := f.feed.AddMember(ctx, f.groupID, f.eve.DeviceID); err != nil {
		t.Fatal(err)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+before, f.eve.Token, nil); r.StatusCode != 200 {
		t.Fatalf("new member: %d", r.StatusCode)
	}
}

// failingReader yields n bytes, then fails as a dropped connection would.
type failingReader struct {
	data []byte
	n    int
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n >= len(r.data) {
		return 0, errors.New("connection dropped")
	}
	k := copy(p, r.data[r.n:])
	r.n += k
	return k, nil
}

func TestAttachmentResumeAfterDroppedConnection(t *testing.T) {
	f := newAttachFixture(t)
	data := randomBytes(1 << 20)
	a := f.create(t, f.alice, int64(len(data)))
	half := len(data) / 2
	req, _ := http.NewRequest("PUT", f.s.URL+"/v1/attachments/"+a.ID+"?offset=0", &failingReader{data: data[:half]})
	req.ContentLength = int64(len(data)) // promises the whole file, sends half
	req.Header.Set("Authorization", "Bearer "+f.alice.Token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the dropped request succeeded: %d", resp.StatusCode)
	}
	// The server keeps what arrived, durably; wait for it to notice.
	var st handlers.AttachmentBody
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID+"/upload", f.alice.Token, nil)
		r.JSON(t, &st)
		if st.Offset > 0 && st.Offset <= int64(half) {
			// Stable once the handler returned: ask until two reads agree.
			r2 := f.s.Do(t, "GET", "/v1/attachments/"+a.ID+"/upload", f.alice.Token, nil)
			var st2 handlers.AttachmentBody
			r2.JSON(t, &st2)
			if st2.Offset == st.Offset {
				if r := f.put(t, f.alice, a.ID, int(st.Offset), data[st.Offset:]); r.StatusCode == 200 {
					break
				} else if r.StatusCode != http.StatusConflict {
					t.Fatalf("resume: %d %s", r.StatusCode, r.Body)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload offset never settled: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil)
	if r.StatusCode != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("download after resume: %d, %d bytes", r.StatusCode, len(r.Body))
	}
}

func TestAttachmentCleanup(t *testing.T) {
	f := newAttachFixture(t)
	ctx := context.Background()
	run := func() {
		t.Helper()
		if _, err := f.s.Store.DeleteExpiredAttachments(ctx, f.s.Store.Now().Add(-f.s.Config.Limits.Retention)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Store.SweepAttachmentFiles(ctx, f.s.App.Blobs()); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan: begun, never finished.
	orphan := f.create(t, f.alice, 100)
	f.put(t, f.alice, orphan.ID, 0, randomBytes(50))
	done := f.create(t, f.alice, 100)
	f.put(t, f.alice, done.ID, 0, randomBytes(100))
	run()
	if rows, files := countAttachments(t, f); rows != 2 || files != 2 {
		t.Fatalf("before a day: %d rows %d files", rows, files)
	}
	f.s.Clock.Advance(store.OrphanUploadAge + time.Minute)
	run()
	if rows, files := countAttachments(t, f); rows != 1 || files != 1 {
		t.Fatalf("after a day: %d rows %d files", rows, files)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+orphan.ID+"/upload", f.alice.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("orphan still there: %d", r.StatusCode)
	}
	var used int64
	_ = f.s.Store.ReadDB().NewRaw(`SELECT bytes_used FROM groups WHERE id = ?`, f.groupID).Scan(ctx, &used)
	if used != 100 {
		t.Fatalf("bytes_used after orphan cleanup: %d", used)
	}
	// Retention expiry deletes complete attachments too.
	keep := f.create(t, f.alice, 10)
	f.put(t, f.alice, keep.ID, 0, randomBytes(10))
	f.s.Clock.Advance(f.s.Config.Limits.Retention - 12*time.Hour)
	run()
	if rows, files := countAttachments(t, f); rows != 1 || files != 1 {
		t.Fatalf("after retention: %d rows %d files", rows, files)
	}
	// Deleting the group deletes its attachments.
	if err := f.s.Store.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.NewRaw(`DELETE FROM groups WHERE id = ?`, f.groupID).Exec(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	run()
	if rows, files := countAttachments(t, f); rows != 0 || files != 0 {
		t.Fatalf("after group deletion: %d rows %d files", rows, files)
	}
}

func TestAttachmentStats(t *testing.T) {
	f := newAttachFixture(t)
	a := f.create(t, f.alice, 1234)
	f.put(t, f.alice, a.ID, 0, randomBytes(1234))
	f.create(t, f.alice, 99)
	st, err := f.s.Store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Attachments.Count != 1 || st.Attachments.Bytes != 1234 || st.Attachments.Incomplete != 1 || st.MessageBytes != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// A crash after the blob was committed but before its row was marked leaves
// an attachment that is not downloadable; the uploader's next status (or
// PUT at the final offset) completes it.
func TestAttachmentCommittedBeforeCrash(t *testing.T) {
	f := newAttachFixture(t)
	ctx := context.Background()
	data := randomBytes(1000)
	a := f.create(t, f.alice, int64(len(data)))
	blobs := f.s.App.Blobs()
	if _, err := blobs.Append(ctx, a.ID, 0, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("part file served: %d", r.StatusCode)
	}
	if err := blobs.Commit(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("unmarked attachment served: %d", r.StatusCode)
	}
	var st handlers.AttachmentBody
	f.s.Do(t, "GET", "/v1/attachments/"+a.ID+"/upload", f.alice.Token, nil).JSON(t, &st)
	if !st.Complete || st.Offset != int64(len(data)) {
		t.Fatalf("status: %+v", st)
	}
	if r := f.s.Do(t, "GET", "/v1/attachments/"+a.ID, f.bob.Token, nil); r.StatusCode != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("download: %d", r.StatusCode)
	}
}
