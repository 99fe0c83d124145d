package crashtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// register creates n accounts. Until passkey sign-up is on main it seeds
// users, devices and sessions in the shared SQLite file (the server has it
// open in WAL mode; the store's busy timeout covers the brief overlap).
func register(t *testing.T, ctx context.Context, c *bench.Client, bin, dataDir string, proc *bench.Process, n int) []bench.Account {
	t.Helper()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(dataDir, "sovereign.db"), Synchronous: "FULL"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := make([]bench.Account, n)
	for i := range out {
		token, hash := models.NewToken()
		name := fmt.Sprintf("crash-%d", i)
		err := st.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
			uid, err := store.InsertUser(ctx, tx, name, name, models.RoleMember)
			if err != nil {
				return err
			}
			did, err := store.InsertDevice(ctx, tx, uid, name)
			if err != nil {
				return err
			}
			if _, err := store.InsertSession(ctx, tx, uid, did, hash, time.Hour); err != nil {
				return err
			}
			out[i] = bench.Account{UserID: uid, DeviceID: did, Token: token, Username: name}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
