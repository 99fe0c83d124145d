package handlers

import (
	"context"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// TagMe groups the self-service operations of the signed-in user.
const TagMe = "me"

// DeviceInfo describes one of the user's devices (app installs).
type DeviceInfo struct {
	ID             string         `json:"id" format:"uuid" doc:"Device id"`
	Name           string         `json:"name" doc:"Name given at sign-in" example:"Alice's phone"`
	CreatedAt      time.Time      `json:"created_at" doc:"When the device first signed in"`
	LastSeenAt     *time.Time     `json:"last_seen_at,omitempty" doc:"Last authenticated request (updated at most once a minute)"`
	RevokedAt      *time.Time     `json:"revoked_at,omitempty" doc:"When the device was revoked; a revoked device can never sign in again"`
	ActiveSessions int            `json:"active_sessions" doc:"Sessions of the device that are neither ended nor expired"`
	Current        bool           `json:"current" doc:"True for the device making this request"`
	Push           bool           `json:"push" doc:"The device has a Web Push subscription (PUT /v1/me/devices/current/push)"`
	SignatureKey   string         `json:"signature_key,omitempty" doc:"The device's MLS signature public key bound to a passkey, base64url; absent when unbound"`
	Binding        *AssertionBody `json:"binding,omitempty" doc:"The passkey assertion over the device binding challenge (docs/verification.md); absent when unbound"`
}

func deviceInfo(d store.DeviceInfo, current string) DeviceInfo {
	return DeviceInfo{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt, RevokedAt: d.RevokedAt,
		ActiveSessions: d.ActiveSessions, Current: d.ID == current, Push: d.Push,
		SignatureKey: signatureKey(d.SignatureKey), Binding: assertionBody(d.Binding)}
}

// SessionInfo describes an active session.
type SessionInfo struct {
	ID         string    `json:"id" format:"uuid" doc:"Session id"`
	DeviceID   string    `json:"device_id" format:"uuid" doc:"The device the session belongs to"`
	DeviceName string    `json:"device_name" doc:"The device's name" example:"Alice's phone"`
	CreatedAt  time.Time `json:"created_at" doc:"When the session was opened"`
	LastSeenAt time.Time `json:"last_seen_at" doc:"Last authenticated request (updated at most once a minute)"`
	ExpiresAt  time.Time `json:"expires_at" doc:"When the session ends unless ended earlier"`
	Current    bool      `json:"current" doc:"True for the session making this request"`
}

// PasskeyInfo describes a passkey. Public key material is not exposed.
type PasskeyInfo struct {
	ID              string     `json:"id" format:"uuid" doc:"Passkey id"`
	Name            string     `json:"name" doc:"Name chosen by the user" example:"iCloud Keychain"`
	CredentialID    string     `json:"credential_id" doc:"WebAuthn credential id, base64url"`
	AAGUID          string     `json:"aaguid,omitempty" doc:"Authenticator model (AAGUID) as a UUID, when the authenticator reported one"`
	Transports      []string   `json:"transports" doc:"Transports the authenticator reported"`
	BackupEligible  bool       `json:"backup_eligible" doc:"The passkey can be synced (e.g. a platform keychain)"`
	BackedUp        bool       `json:"backed_up" doc:"The passkey is currently synced or backed up"`
	CloneDetected   bool       `json:"clone_detected" doc:"A signature counter went backwards: the passkey may be copied and is blocked from signing in"`
	CloneDetectedAt *time.Time `json:"clone_detected_at,omitempty" doc:"When the clone was detected"`
	CreatedAt       time.Time  `json:"created_at" doc:"When the passkey was registered"`
	LastUsedAt      *time.Time `json:"last_used_at,omitempty" doc:"Last successful login with it"`
}

func passkeyInfo(c models.Credential) PasskeyInfo {
	p := PasskeyInfo{ID: c.ID, Name: c.Name, CredentialID: base64.RawURLEncoding.EncodeToString(c.CredentialID),
		Transports: c.Transports, BackupEligible: c.Flags&models.FlagBackupEligible != 0,
		BackedUp: c.Flags&models.FlagBackupState != 0, CloneDetected: c.CloneWarning, CloneDetectedAt: c.CloneDetectedAt,
		CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}
	if p.Transports == nil {
		p.Transports = []string{}
	}
	if len(c.AAGUID) == 16 && !allZero(c.AAGUID) {
		const hexd = "0123456789abcdef"
		b := make([]byte, 0, 36)
		for i, x := range c.AAGUID {
			if i == 4 || i == 6 || i == 8 || i == 10 {
				b = append(b, '-')
			}
			b = append(b, hexd[x>>4], hexd[x&15])
		}
		p.AAGUID = string(b)
	}
	return p
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// PasskeyOutput answers with one passkey.
type PasskeyOutput struct {
	Body PasskeyInfo
}

// MeOutput is who the caller is.
type MeOutput struct {
	Body struct {
		User    UserInfo    `json:"user"`
		Device  DeviceInfo  `json:"device"`
		Session SessionInfo `json:"session"`
		RPID    string      `json:"rp_id" doc:"The server's WebAuthn relying-party id: device bindings and passkey approvals are assertions for it (authenticatorData's rpIdHash = SHA-256(rp_id))" example:"chat.example.org"`
	}
}

// SessionListOutput lists active sessions.
type SessionListOutput struct {
	Body struct {
		Sessions []SessionInfo `json:"sessions" doc:"Active sessions, newest first"`
	}
}

// DeviceListOutput lists devices.
type DeviceListOutput struct {
	Body struct {
		Devices []DeviceInfo `json:"devices" doc:"All devices, revoked ones included, oldest first"`
	}
}

// PasskeyListOutput lists passkeys.
type PasskeyListOutput struct {
	Body struct {
		Passkeys []PasskeyInfo `json:"passkeys" doc:"All passkeys, oldest first"`
	}
}

// EndedOutput reports how many sessions were ended.
type EndedOutput struct {
	Body struct {
		Ended int `json:"ended" doc:"How many sessions were ended"`
	}
}

// SessionPath names a session.
type SessionPath struct {
	SessionID string `path:"session_id" format:"uuid" doc:"Session id"`
}

// DevicePath names a device.
type DevicePath struct {
	DeviceID string `path:"device_id" format:"uuid" doc:"Device id"`
}

// PasskeyPath names a passkey.
type PasskeyPath struct {
	PasskeyID string `path:"passkey_id" format:"uuid" doc:"Passkey id"`
}

// RenamePasskeyInput renames a passkey.
type RenamePasskeyInput struct {
	PasskeyPath
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"64" doc:"New name" example:"Work laptop"`
	}
}

func (h *handler) registerMe(api huma.API) {
	unauth := []int{http.StatusUnauthorized}
	huma.Register(api, huma.Operation{
		OperationID: "getMe",
		Method:      http.MethodGet,
		Path:        "/v1/me",
		Summary:     "Who am I",
		Description: "The signed-in user, the device and the session of this token.",
		Tags:        []string{TagMe},
		Security:    bearer,
		Errors:      unauth,
	}, func(ctx context.Context, _ *struct{}) (*MeOutput, error) {
		p := PrincipalFrom(ctx)
		u, err := h.d.Store.UserByID(ctx, p.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		d, err := h.d.Store.DeviceByID(ctx, p.UserID, p.DeviceID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		s, err := h.d.Store.SessionByID(ctx, p.SessionID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &MeOutput{}
		out.Body.User = userInfo(u)
		out.Body.RPID = h.d.Config.RPID
		out.Body.Device = deviceInfo(*d, p.DeviceID)
		out.Body.Session = SessionInfo{ID: s.ID, DeviceID: s.DeviceID, DeviceName: d.Name, CreatedAt: s.CreatedAt,
			LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt, Current: true}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listMySessions",
		Method:      http.MethodGet,
		Path:        "/v1/me/sessions",
		Summary:     "List my sessions",
		Description: "Sessions that are neither ended nor expired, newest first, with `current` marking this one.",
		Tags:        []string{TagMe},
		Security:    bearer,
		Errors:      unauth,
	}, func(ctx context.Context, _ *struct{}) (*SessionListOutput, error) {
		p := PrincipalFrom(ctx)
		list, err := h.d.Store.ActiveSessions(ctx, p.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &SessionListOutput{}
		out.Body.Sessions = make([]SessionInfo, len(list))
		for i, s := range list {
			out.Body.Sessions[i] = SessionInfo{ID: s.ID, DeviceID: s.DeviceID, DeviceName: s.DeviceName, CreatedAt: s.CreatedAt,
				LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt, Current: s.ID == p.SessionID}
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "endMySession",
		Method:      http.MethodDelete,
		Path:        "/v1/me/sessions/{session_id}",
		Summary:     "End one of my sessions",
		Description: "Ends a session at once (its token gets 401 and its streams close). Ending the current " +
			"session logs out. The device stays and may sign in again.",
		Tags:          []string{TagMe},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound},
	}, func(ctx context.Context, in *SessionPath) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		if err := h.d.Store.EndSession(ctx, p.UserID, in.SessionID); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "endMyOtherSessions",
		Method:      http.MethodDelete,
		Path:        "/v1/me/sessions",
		Summary:     "End all my other sessions",
		Description: "After a step-up for `end_other_sessions` (its grant in the `Sovereign-Step-Up` header): ends every " +
			"session of yours except the current one, e.g. after a phone was lost or a token stolen. With " +
			"`remove_passkeys_added_after`, also deletes every passkey added after that time except the one that made the " +
			"step-up (each announced to your devices with a `passkey_removed` notice). The devices stay and may sign in " +
			"again; to shut a device out for good, revoke it. Recorded in the audit log.",
		Tags:     []string{TagMe},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *EndOtherSessionsInput) (*EndOtherSessionsOutput, error) {
		p := PrincipalFrom(ctx)
		r := store.EndOthers{Actor: h.actor(ctx, p), UserID: p.UserID, KeepSessionID: p.SessionID,
			StepUp: h.stepUpCheck(ctx, in.StepUp, models.StepUpEndOtherSessions, "")}
		if !in.RemovePasskeysAddedAfter.IsZero() {
			t := in.RemovePasskeysAddedAfter
			r.RemovePasskeysAddedAfter = &t
		}
		n, removed, err := h.d.Store.EndOtherSessions(ctx, r)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &EndOtherSessionsOutput{}
		out.Body.Ended, out.Body.PasskeysRemoved = n, removed
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listMyDevices",
		Method:      http.MethodGet,
		Path:        "/v1/me/devices",
		Summary:     "List my devices",
		Description: "Every device (app install) you have signed in with, revoked ones included.",
		Tags:        []string{TagMe},
		Security:    bearer,
		Errors:      unauth,
	}, func(ctx context.Context, _ *struct{}) (*DeviceListOutput, error) {
		p := PrincipalFrom(ctx)
		list, err := h.d.Store.DevicesByUser(ctx, p.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &DeviceListOutput{}
		out.Body.Devices = make([]DeviceInfo, len(list))
		for i, d := range list {
			out.Body.Devices[i] = deviceInfo(d, p.DeviceID)
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "revokeMyDevice",
		Method:      http.MethodDelete,
		Path:        "/v1/me/devices/{device_id}",
		Summary:     "Revoke one of my devices",
		Description: "For a lost or compromised device: its sessions end at once and it can never sign in " +
			"again (a new install signs in as a new device). The device stays in the list, marked revoked. " +
			"Revoking a revoked device succeeds and changes nothing. Revoking the current device also logs out.",
		Tags:          []string{TagMe},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound},
	}, func(ctx context.Context, in *DevicePath) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		if err := h.d.Store.RevokeDevice(ctx, p.UserID, in.DeviceID); err != nil {
			return nil, h.fail(ctx, err)
		}
		h.log().InfoContext(ctx, "device revoked", "user_id", p.UserID, "device_id", in.DeviceID, "by_device", p.DeviceID)
		return nil, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listMyPasskeys",
		Method:      http.MethodGet,
		Path:        "/v1/me/passkeys",
		Summary:     "List my passkeys",
		Description: "Your passkeys, oldest first. Add one with the add-passkey ceremony.",
		Tags:        []string{TagMe},
		Security:    bearer,
		Errors:      unauth,
	}, func(ctx context.Context, _ *struct{}) (*PasskeyListOutput, error) {
		p := PrincipalFrom(ctx)
		list, err := h.d.Store.CredentialsByUser(ctx, p.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &PasskeyListOutput{}
		out.Body.Passkeys = make([]PasskeyInfo, len(list))
		for i, c := range list {
			out.Body.Passkeys[i] = passkeyInfo(c)
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "renameMyPasskey",
		Method:      http.MethodPatch,
		Path:        "/v1/me/passkeys/{passkey_id}",
		Summary:     "Rename a passkey",
		Tags:        []string{TagMe},
		Security:    bearer,
		Errors:      []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *RenamePasskeyInput) (*PasskeyOutput, error) {
		p := PrincipalFrom(ctx)
		name, err := models.CleanName("name", in.Body.Name, models.PasskeyNameMaxLen)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		c, err := h.d.Store.RenameCredential(ctx, p.UserID, in.PasskeyID, name)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &PasskeyOutput{Body: passkeyInfo(*c)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "deleteMyPasskey",
		Method:      http.MethodDelete,
		Path:        "/v1/me/passkeys/{passkey_id}",
		Summary:     "Delete a passkey",
		Description: "After a step-up for `delete_passkey` and this passkey (its grant in the `Sovereign-Step-Up` " +
			"header): deletes a passkey so it can no longer sign in. Refused (409 `last_passkey`) when it is your last " +
			"usable passkey. Sessions already open stay open. Recorded in the audit log; every device of the account " +
			"gets a `passkey_removed` notice.",
		Tags:          []string{TagMe},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *DeletePasskeyInput) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		su := h.stepUpCheck(ctx, in.StepUp, models.StepUpDeletePasskey, in.PasskeyID)
		if err := h.d.Store.DeleteCredential(ctx, h.actor(ctx, p), p.UserID, in.PasskeyID, su); err != nil {
			return nil, h.fail(ctx, err)
		}
		return nil, nil
	})
}
