package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/ratelimit"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
)

// TagUsers groups the directory operations.
const TagUsers = "users"

// DirectoryDeviceBody is an active device of a user in the directory.
type DirectoryDeviceBody struct {
	ID           string         `json:"id" format:"uuid" doc:"Device id"`
	Name         string         `json:"name" doc:"Name given at sign-in" example:"Bob's phone"`
	CreatedAt    time.Time      `json:"created_at" doc:"When the device first signed in"`
	SignatureKey string         `json:"signature_key,omitempty" doc:"The device's MLS signature public key bound to a passkey, base64url; absent when unbound"`
	Binding      *AssertionBody `json:"binding,omitempty" doc:"The assertion of a passkey of the user over the device binding challenge (docs/verification.md); absent when unbound: such a device is not approved by passkey"`
}

// DirectoryPasskeyBody is a passkey of a user as peers see it, to verify
// device bindings and passkey approvals.
type DirectoryPasskeyBody struct {
	CredentialID string        `json:"credential_id" doc:"WebAuthn credential id, base64url"`
	PublicKey    string        `json:"public_key" doc:"COSE_Key public key, base64url"`
	CreatedAt    time.Time     `json:"created_at" doc:"When the passkey was registered"`
	Recovered    bool          `json:"recovered" doc:"Made by an account recovery (an admin's recovery invite): an account reset, without approval"`
	Approval     *ApprovalBody `json:"approval,omitempty" doc:"The approval by an existing passkey of the user over the passkey approval challenge; absent for the account's first passkey and a recovery's"`
}

// ApprovalBody is a passkey approval: an assertion by an existing passkey.
type ApprovalBody struct {
	ByCredentialID    string `json:"by_credential_id" doc:"The approving passkey (WebAuthn credential id), base64url"`
	Nonce             string `json:"nonce" doc:"The server's 32-byte nonce in the challenge, base64url"`
	AuthenticatorData string `json:"authenticator_data" doc:"authenticatorData as the client sent it, base64url"`
	ClientDataJSON    string `json:"client_data_json" doc:"clientDataJSON as the client sent it, base64url"`
	Signature         string `json:"signature" doc:"The assertion signature, base64url"`
}

func approvalBody(a *models.Assertion) *ApprovalBody {
	if a == nil {
		return nil
	}
	return &ApprovalBody{ByCredentialID: b64(a.CredentialID), Nonce: b64(a.Nonce), AuthenticatorData: b64(a.AuthenticatorData),
		ClientDataJSON: b64(a.ClientDataJSON), Signature: b64(a.Signature)}
}

// DirectoryUserBody is a user as other signed-in users see them.
type DirectoryUserBody struct {
	ID          string                 `json:"id" format:"uuid" doc:"User id"`
	Username    string                 `json:"username" doc:"Case-folded username" example:"bob"`
	DisplayName string                 `json:"display_name" doc:"Display name chosen by the user" example:"Bob Marley"`
	Devices     []DirectoryDeviceBody  `json:"devices,omitempty" nullable:"false" doc:"Active (not revoked) devices, oldest first; absent in search results"`
	Passkeys    []DirectoryPasskeyBody `json:"passkeys,omitempty" nullable:"false" doc:"The user's current passkeys with public keys and approvals, oldest first; absent in search results"`
}

func directoryUser(u *store.DirectoryUser) DirectoryUserBody {
	b := DirectoryUserBody{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName}
	if u.Devices != nil {
		b.Devices = make([]DirectoryDeviceBody, len(u.Devices))
		for i, d := range u.Devices {
			b.Devices[i] = DirectoryDeviceBody{ID: d.ID, Name: d.Name, CreatedAt: models.FromMillis(d.CreatedAt),
				SignatureKey: signatureKey(d.SignatureKey), Binding: assertionBody(d.Binding())}
		}
	}
	if u.Passkeys != nil {
		b.Passkeys = make([]DirectoryPasskeyBody, len(u.Passkeys))
		for i, p := range u.Passkeys {
			b.Passkeys[i] = DirectoryPasskeyBody{CredentialID: b64(p.CredentialID), PublicKey: b64(p.PublicKey),
				CreatedAt: models.FromMillis(p.CreatedAt), Recovered: p.Recovered, Approval: approvalBody(p.Approval)}
		}
	}
	return b
}

// LookupUserInput names a user by username.
type LookupUserInput struct {
	Username string `path:"username" minLength:"1" maxLength:"64" doc:"Exact username (any case), or a user id" example:"bob"`
}

// LookupUserOutput is one user.
type LookupUserOutput struct {
	Body DirectoryUserBody
}

// SearchUsersInput searches usernames by prefix.
type SearchUsersInput struct {
	Prefix string `query:"prefix" required:"true" minLength:"2" maxLength:"64" doc:"Start of a username (any case), at least 2 characters"`
	Limit  int    `query:"limit" minimum:"1" maximum:"20" default:"20" doc:"Most users to return"`
}

// SearchUsersOutput lists users.
type SearchUsersOutput struct {
	Body struct {
		Users []DirectoryUserBody `json:"users" nullable:"false" doc:"Enabled users whose username starts with the prefix, in username order"`
	}
}

// UpdateMeInput changes the caller's profile.
type UpdateMeInput struct {
	Body struct {
		DisplayName string `json:"display_name" minLength:"1" maxLength:"64" doc:"New display name" example:"Alice M."`
	}
}

// UpdateMeOutput is the user after the change.
type UpdateMeOutput struct {
	Body UserInfo
}

// directoryMode is the directory setting in force.
func (h *handler) directoryMode() string {
	if h.d.Settings != nil {
		return h.d.Settings.Get().Directory
	}
	if h.d.Config.Directory != "" {
		return h.d.Config.Directory
	}
	return "exact"
}

func (h *handler) registerDirectory(api huma.API) {
	// Rate-limited like key-package claims: one budget per calling device
	// for lookups and searches together, so the directory cannot be
	// enumerated by guessing names quickly.
	perMin := h.d.Config.Limits.ClaimsPerMinute
	if perMin <= 0 {
		perMin = 30
	}
	limiter := ratelimit.New(perMin, perMin, h.now)
	h.followSetting(func(v settings.Values) { limiter.SetRate(v.ClaimsPerMinute, v.ClaimsPerMinute) })
	allow := func(p *models.Principal) error {
		if ok, wait := limiter.Allow(p.DeviceID, 1); !ok {
			return rateLimited("directory_rate_limited", "too many directory requests from this device", wait)
		}
		return nil
	}

	huma.Register(api, huma.Operation{
		OperationID: "lookupUser",
		Method:      http.MethodGet,
		Path:        "/v1/users/{username}",
		Summary:     "Find a user by username",
		Description: "Exact match only (by username, or by user id): the user's id, username, display name and active devices, " +
			"each with its signature key and passkey binding when bound, and the user's passkeys (public keys, approvals, " +
			"recovered flag), to start a conversation and verify the devices (docs/verification.md). " +
			"Unknown, disabled and deleted users all give the same 404 `user_not_found`. Rate-limited per calling device " +
			"like key-package claims (`--claims-per-minute`, lookups and searches together): 429 with `Retry-After`.",
		Tags:     []string{TagUsers},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, func(ctx context.Context, in *LookupUserInput) (*LookupUserOutput, error) {
		if err := allow(PrincipalFrom(ctx)); err != nil {
			return nil, h.fail(ctx, err)
		}
		u, err := h.d.Store.LookupUser(ctx, in.Username)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &LookupUserOutput{Body: directoryUser(u)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "searchUsers",
		Method:      http.MethodGet,
		Path:        "/v1/users",
		Summary:     "Search users by username prefix",
		Description: "Only when an admin set the directory setting to `search` (default `exact`: 403 `directory_search_disabled`). " +
			"Returns at most 20 enabled users whose username starts with the prefix (at least 2 characters), without devices. " +
			"Shares the rate limit of lookups.",
		Tags:     []string{TagUsers},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, func(ctx context.Context, in *SearchUsersInput) (*SearchUsersOutput, error) {
		if h.directoryMode() != "search" {
			return nil, h.fail(ctx, models.Errorf(models.EFORBIDDEN, "directory_search_disabled",
				"this server finds users by exact username only (admin setting directory: exact)"))
		}
		if err := allow(PrincipalFrom(ctx)); err != nil {
			return nil, h.fail(ctx, err)
		}
		us, err := h.d.Store.SearchUsers(ctx, in.Prefix, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &SearchUsersOutput{}
		out.Body.Users = make([]DirectoryUserBody, len(us))
		for i := range us {
			out.Body.Users[i] = directoryUser(&us[i])
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "updateMe",
		Method:      http.MethodPatch,
		Path:        "/v1/me",
		Summary:     "Change my display name",
		Description: "Sets the signed-in user's display name (1 to 64 characters after trimming; no control characters). " +
			"Other members see it in group member lists and the directory at once.",
		Tags:     []string{TagMe},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *UpdateMeInput) (*UpdateMeOutput, error) {
		p := PrincipalFrom(ctx)
		name, err := models.CleanName("display_name", in.Body.DisplayName, models.DisplayNameMaxLen)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		u, err := h.d.Store.SetDisplayName(ctx, p.UserID, name)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &UpdateMeOutput{Body: userInfo(u)}, nil
	})
}
