package testutil

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sovereign-im/sovereign/mls/mlstest"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// KeyPackagesFor builds n real signed key packages (suite 0x0001) bound to
// deviceID, valid from an hour ago for 30 days of the server clock.
func (s *Server) KeyPackagesFor(deviceID string, n int) []mlstest.Built {
	now := s.Clock.Now()
	out := make([]mlstest.Built, n)
	for i := range out {
		out[i] = mlstest.KeyPackage(mlstest.Options{
			Identity:  models.KeyPackageIdentity(deviceID),
			NotBefore: now.Add(-time.Hour),
			NotAfter:  now.Add(30 * 24 * time.Hour),
		})
	}
	return out
}

// UploadKeyPackages uploads n normal key packages of acc's device, plus a
// last-resort one when lastResort is set, through the API, and fails the
// test unless the server answers 201. It returns what it uploaded.
func (s *Server) UploadKeyPackages(t testing.TB, acc Account, n int, lastResort bool) (normal []mlstest.Built, last *mlstest.Built) {
	t.Helper()
	normal = s.KeyPackagesFor(acc.DeviceID, n)
	body := map[string]any{}
	pkgs := make([][]byte, 0, n+1)
	for _, b := range normal {
		pkgs = append(pkgs, b.Bytes)
	}
	if lastResort {
		lr := mlstest.KeyPackage(mlstest.Options{Identity: models.KeyPackageIdentity(acc.DeviceID), LastResort: true,
			NotBefore: s.Clock.Now().Add(-time.Hour), NotAfter: s.Clock.Now().Add(30 * 24 * time.Hour)})
		last = &lr
		body["last_resort_index"] = len(pkgs)
		pkgs = append(pkgs, lr.Bytes)
	}
	body["key_packages"] = pkgs
	if r := s.Do(t, "POST", "/v1/key-packages", acc.Token, body); r.StatusCode != http.StatusCreated {
		t.Fatalf("upload key packages: %d %s", r.StatusCode, r.Body)
	}
	return normal, last
}

// SeedDevice adds a device with a session to acc's user, straight in the
// store, and returns the account as seen from the new device. deviceID ""
// picks a fresh UUIDv7; a given id lets tests use fixtures that name one.
func (s *Server) SeedDevice(t testing.TB, acc Account, deviceID string) Account {
	t.Helper()
	if deviceID == "" {
		deviceID = uuid.Must(uuid.NewV7()).String()
	}
	token, hash := models.NewToken()
	err := s.Store.Write(context.Background(), func(ctx context.Context, tx *store.Tx) error {
		now := models.Millis(tx.Now())
		if _, err := tx.NewRaw(`INSERT INTO devices (id, user_id, name, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)`,
			deviceID, acc.UserID, "test device "+deviceID[:8], now, now).Exec(ctx); err != nil {
			return err
		}
		_, err := store.InsertSession(ctx, tx, acc.UserID, deviceID, hash, s.Config.SessionTTL)
		return err
	})
	if err != nil {
		t.Fatalf("seed device: %v", err)
	}
	return Account{UserID: acc.UserID, DeviceID: deviceID, Token: token, Username: acc.Username}
}
