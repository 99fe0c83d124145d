package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// Passkey-attested devices (issue #18, item 1): device bindings and
// passkey approvals are stored exactly as the client sent them; the
// handlers verified them first.

// ErrBindingDevice is returned when a bound sign-in names another device
// than the one its ceremony was bound to.
var ErrBindingDevice = models.Errorf(models.EINVALID, "binding_device_mismatch",
	"the sign-in was begun for another device: give the device_id of the binding (or none for a new device)")

// useCredential writes back a verified assertion's counter and flags on a
// passkey of the user, only if the counter still increases (so two racing
// assertions with one counter cannot both win): ErrCloneDetected otherwise.
func useCredential(ctx context.Context, tx *Tx, userID, passkeyID string, signCount uint32, flags uint8) error {
	res, err := tx.NewRaw(`UPDATE credentials SET sign_count = ?, flags = ?, last_used_at = ?
WHERE id = ? AND user_id = ? AND clone_warning = 0 AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		int64(signCount), int64(flags), models.Millis(tx.Now()), passkeyID, userID, int64(signCount), int64(signCount)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("update credential: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrCloneDetected
	}
	return nil
}

// setDeviceBinding replaces a device's signature key and binding (the
// server keeps no history).
func setDeviceBinding(ctx context.Context, tx *Tx, deviceID string, b *DeviceBinding) error {
	a := b.Assertion
	_, err := tx.NewRaw(`UPDATE devices SET signature_key = ?, binding_credential_id = ?, binding_nonce = ?,
binding_authenticator_data = ?, binding_client_data_json = ?, binding_signature = ? WHERE id = ?`,
		b.SignatureKey, a.CredentialID, a.Nonce, a.AuthenticatorData, a.ClientDataJSON, a.Signature, deviceID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("bind device: %w", err)
	}
	return nil
}

// CredentialUse is a verified assertion by a passkey, to write back.
type CredentialUse struct {
	PasskeyID string
	SignCount uint32
	Flags     uint8
}

// BindDevice binds a signed-in, not revoked device of the user to a
// signature key with a verified assertion (by passkey use) over its
// binding challenge, replacing any earlier binding, and writes back the
// passkey's counter.
func (s *Store) BindDevice(ctx context.Context, userID string, use CredentialUse, b DeviceBinding) (*DeviceInfo, error) {
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		var revoked sql.NullInt64
		err := tx.NewRaw(`SELECT revoked_at FROM devices WHERE id = ? AND user_id = ?`, b.DeviceID, userID).Scan(ctx, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return errDeviceNotFound
		}
		if err != nil {
			return fmt.Errorf("read device: %w", err)
		}
		if revoked.Valid {
			return models.Errorf(models.EFORBIDDEN, "device_revoked", "this device was revoked")
		}
		if err := useCredential(ctx, tx, userID, use.PasskeyID, use.SignCount, use.Flags); err != nil {
			return err
		}
		return setDeviceBinding(ctx, tx, b.DeviceID, &b)
	})
	if err != nil {
		return nil, err
	}
	return s.DeviceByID(ctx, userID, b.DeviceID)
}

// bindingCols are a device's signature key and binding as rows scan them.
type bindingCols struct {
	SignatureKey      []byte `bun:"signature_key"`
	CredentialID      []byte `bun:"binding_credential_id"`
	Nonce             []byte `bun:"binding_nonce"`
	AuthenticatorData []byte `bun:"binding_authenticator_data"`
	ClientDataJSON    []byte `bun:"binding_client_data_json"`
	Signature         []byte `bun:"binding_signature"`
}

// bindingSelect selects bindingCols from devices aliased d.
const bindingSelect = `d.signature_key, d.binding_credential_id, d.binding_nonce, d.binding_authenticator_data,
d.binding_client_data_json, d.binding_signature`

func (b *bindingCols) binding() *models.Assertion {
	if b.CredentialID == nil {
		return nil
	}
	return &models.Assertion{CredentialID: b.CredentialID, Nonce: b.Nonce, AuthenticatorData: b.AuthenticatorData,
		ClientDataJSON: b.ClientDataJSON, Signature: b.Signature}
}
