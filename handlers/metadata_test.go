package handlers_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/testutil"
	"github.com/sovereign-im/sovereign/testutil/logbuf"
)

// TestMetadataStaysOutOfLogsAndExpires is the Metadata part of issue 19:
// at the default log level the logs name no username, group id or client
// address (request lines carry the operation, not the path); client
// addresses are stored only in the audit log, and only for --ip-retention
// (7 days by default), after which the entries keep none.
func TestMetadataStaysOutOfLogsAndExpires(t *testing.T) {
	var logs logbuf.Buffer
	s := testutil.NewServerWithLog(t, &logs, slog.LevelInfo)
	admin, _ := s.RegisterAdmin(t, "rootadminxyz")
	alice, pk := s.RegisterMember(t, "alicexyz")
	s.Login(t, pk, testutil.LoginOptions{Username: "alicexyz"})
	s.LoginResponse(t, s.NewPasskey(), testutil.LoginOptions{Username: "alicexyz"}) // a failed login
	const groupID = "c2VjcmV0LWdyb3VwLWlkLXh5eg"
	s.Do(t, "GET", "/v1/groups/"+groupID, alice.Token, nil)
	s.Do(t, "GET", "/v1/admin/users/"+alice.UserID, admin.Token, nil)
	s.Do(t, "GET", "/v1/admin/users", alice.Token, nil) // a refused admin request

	out := logs.String()
	if !strings.Contains(out, "operation=getGroup") {
		t.Fatalf("the request log lacks the operation:\n%s", out)
	}
	for _, secret := range []string{"alicexyz", "rootadminxyz", groupID, "127.0.0.1", "::1"} {
		if strings.Contains(out, secret) {
			t.Errorf("the default-level log contains %q:\n%s", secret, out)
		}
	}

	// Addresses: only in the audit log.
	db := s.Store.ReadDB()
	ctx := context.Background()
	addressesIn := func() map[string]int {
		found := map[string]int{}
		tablesQuery := `SELECT name FROM sqlite_master WHERE type = 'table'`
		if s.Store.Engine() == "postgres" {
			tablesQuery = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
		}
		rows, err := db.QueryContext(ctx, tablesQuery)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			tables = append(tables, n)
		}
		rows.Close()
		for _, tb := range tables {
			r, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT * FROM "%s"`, tb))
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := r.Columns()
			for r.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				_ = r.Scan(ptrs...)
				for _, v := range vals {
					var str string
					switch x := v.(type) {
					case string:
						str = x
					case []byte:
						str = string(x)
					}
					if strings.Contains(str, "127.0.0.1") {
						found[tb]++
					}
				}
			}
			r.Close()
		}
		return found
	}
	if got := addressesIn(); len(got) != 1 || got["audit_log"] == 0 {
		t.Fatalf("client addresses stored in %v, want only audit_log", got)
	}
	s.Clock.Advance(7*24*time.Hour + time.Minute)
	s.Do(t, "GET", "/v1/admin/users", alice.Token, nil) // a fresh entry keeps its address
	for _, r := range s.App.Maintenance().RunOnce(ctx) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	var old, fresh sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT
 (SELECT count(*) FROM audit_log WHERE client_ip IS NOT NULL AND at < ?),
 (SELECT count(*) FROM audit_log WHERE client_ip IS NOT NULL)`, s.Clock.Now().Add(-time.Hour).UnixMilli()).Scan(&old, &fresh); err != nil {
		t.Fatal(err)
	}
	if old.Int64 != 0 || fresh.Int64 == 0 {
		t.Fatalf("after --ip-retention: %d old entries keep an address, %d fresh ones do", old.Int64, fresh.Int64)
	}
}
