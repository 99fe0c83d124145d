package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
)

// AdminUser is a user as the admin's user list shows it.
type AdminUser struct {
	ID             string     `json:"id" format:"uuid" doc:"User id"`
	Username       string     `json:"username" doc:"Case-folded username" example:"alice"`
	DisplayName    string     `json:"display_name" doc:"Display name" example:"Alice Martin"`
	Role           string     `json:"role" enum:"admin,member" doc:"Role on this server"`
	CreatedAt      time.Time  `json:"created_at" doc:"When the account was created"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty" doc:"When an admin disabled the account; absent while enabled"`
	Devices        int        `json:"devices" doc:"Devices that are not revoked"`
	ActiveSessions int        `json:"active_sessions" doc:"Sessions neither expired nor revoked"`
	LastSeenAt     *time.Time `json:"last_seen_at,omitempty" doc:"Latest use of any of the user's devices"`
}

func adminUser(u store.UserSummary) AdminUser {
	return AdminUser{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: string(u.Role), CreatedAt: u.CreatedAt,
		DisabledAt: u.DisabledAt, Devices: u.Devices, ActiveSessions: u.ActiveSessions, LastSeenAt: u.LastSeenAt}
}

// AdminDevice is one of a user's devices.
type AdminDevice struct {
	ID             string     `json:"id" format:"uuid" doc:"Device id"`
	Name           string     `json:"name" doc:"Name given at sign-in"`
	CreatedAt      time.Time  `json:"created_at" doc:"When the device first signed in"`
	LastSeenAt     *time.Time `json:"last_seen_at,omitempty" doc:"Latest request from the device"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty" doc:"When the device was revoked; absent while active"`
	ActiveSessions int        `json:"active_sessions" doc:"Sessions of this device neither expired nor revoked"`
}

// AdminSession is one of a user's active sessions.
type AdminSession struct {
	ID         string    `json:"id" format:"uuid" doc:"Session id"`
	DeviceID   string    `json:"device_id" format:"uuid" doc:"Device the session belongs to"`
	DeviceName string    `json:"device_name" doc:"Name of that device"`
	CreatedAt  time.Time `json:"created_at" doc:"When the session was opened"`
	LastSeenAt time.Time `json:"last_seen_at" doc:"Latest use"`
	ExpiresAt  time.Time `json:"expires_at" doc:"When it ends unless revoked"`
}

// AdminUserDetail is one user with devices, sessions and counts.
type AdminUserDetail struct {
	AdminUser
	Passkeys   int            `json:"passkeys" doc:"Passkeys registered"`
	Groups     int            `json:"groups" doc:"Groups one of the user's devices is a member of"`
	DeviceList []AdminDevice  `json:"device_list" nullable:"false" doc:"Every device, revoked ones included, oldest first"`
	Sessions   []AdminSession `json:"sessions" nullable:"false" doc:"Active sessions, newest first"`
}

// AdminUsersInput pages through users.
type AdminUsersInput struct {
	Q     string `query:"q" maxLength:"64" doc:"Part of a username or display name (any case)"`
	After string `query:"after" maxLength:"32" doc:"Return users after this username (from next_after)"`
	Limit int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"Page size"`
}

// AdminUsersOutput is a page of users in username order.
type AdminUsersOutput struct {
	Body struct {
		Users     []AdminUser `json:"users" nullable:"false"`
		NextAfter *string     `json:"next_after" doc:"Pass as after= for the next page; null on the last page"`
	}
}

// AdminUserInput names a user.
type AdminUserInput struct {
	ID string `path:"id" format:"uuid" doc:"User id"`
}

// AdminDeleteUserInput deletes a user after the admin's step-up.
type AdminDeleteUserInput struct {
	ID     string `path:"id" format:"uuid" doc:"User id"`
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"Step-up grant from stepUpFinish, made by this admin session for delete_user and this user within the last 60 seconds; single use. Without a valid one: 403 step_up_required."`
}

// AdminUserOutput answers GET /v1/admin/users/{id}.
type AdminUserOutput struct {
	Body AdminUserDetail
}

// AdminUserChangeOutput answers an action on a user.
type AdminUserChangeOutput struct {
	Body struct {
		User            AdminUser `json:"user" doc:"The user after the change"`
		SessionsRevoked int       `json:"sessions_revoked" doc:"Sessions that ended"`
		Groups          int       `json:"groups" doc:"Groups the user was removed from"`
	}
}

// --- Invites ----------------------------------------------------------------

// AdminInvite is an invite (never its code: the server keeps only a hash).
type AdminInvite struct {
	ID                string     `json:"id" format:"uuid" doc:"Invite id"`
	Role              string     `json:"role" enum:"admin,member" doc:"Role the invite grants"`
	Status            string     `json:"status" enum:"active,expired,used_up,revoked" doc:"Whether it can still be used"`
	UsesLeft          int        `json:"uses_left" doc:"Registrations it still allows"`
	CreatedAt         time.Time  `json:"created_at" doc:"When it was made"`
	ExpiresAt         time.Time  `json:"expires_at" doc:"When it stops working"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty" doc:"When an admin revoked it"`
	CreatedBy         string     `json:"created_by,omitempty" format:"uuid" doc:"Admin who made it; absent for the CLI and first start"`
	CreatedByUsername string     `json:"created_by_username,omitempty" doc:"That admin's username"`
}

func adminInvite(i store.InviteInfo) AdminInvite {
	return AdminInvite{ID: i.ID, Role: string(i.Role), Status: i.Status, UsesLeft: i.UsesLeft, CreatedAt: i.CreatedAt,
		ExpiresAt: i.ExpiresAt, RevokedAt: i.RevokedAt, CreatedBy: i.CreatedBy, CreatedByUsername: i.CreatedByUsername}
}

// CreateInviteInput makes an invite.
type CreateInviteInput struct {
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"For an admin invite only: a step-up grant from stepUpFinish, made by this admin session for admin_invite within the last 60 seconds; single use. Without a valid one an admin invite is refused with 403 step_up_required; a member invite needs none."`
	Body   struct {
		Role           string `json:"role" enum:"admin,member" default:"member" doc:"Role the invite grants"`
		ExpiresInHours int    `json:"expires_in_hours" minimum:"1" maximum:"8760" default:"168" doc:"Hours until the invite stops working (1 hour to 1 year)"`
		Uses           int    `json:"uses" minimum:"1" maximum:"1000" default:"1" doc:"How many registrations it allows"`
	}
}

// CreateInviteOutput carries the code, shown only here.
type CreateInviteOutput struct {
	Body struct {
		Invite AdminInvite `json:"invite"`
		Code   string      `json:"code" doc:"The invite code. Shown once: the server keeps only its SHA-256." example:"k3xq-7b2m-a9pd-q4rt-w8yz-c5ne-j6hs-v2lf"`
		Link   string      `json:"link" format:"uri" doc:"Link that opens registration with the code (in the fragment, which browsers never send to servers)"`
	}
}

// AdminInvitesInput lists invites.
type AdminInvitesInput struct {
	All bool `query:"all" doc:"Include expired, used-up and revoked invites"`
}

// AdminInvitesOutput lists invites, newest first.
type AdminInvitesOutput struct {
	Body struct {
		Invites []AdminInvite `json:"invites" nullable:"false"`
	}
}

// AdminInviteInput names an invite.
type AdminInviteInput struct {
	ID string `path:"id" format:"uuid" doc:"Invite id"`
}

func (h *handler) registerAdminUsers(api huma.API) {
	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminListUsers",
		Method:      http.MethodGet,
		Path:        "/v1/admin/users",
		Summary:     "List users",
		Description: "Users in username order, in pages, optionally those whose username or display name contains `q`.",
	}, http.StatusUnprocessableEntity), h.adminListUsers)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminGetUser",
		Method:      http.MethodGet,
		Path:        "/v1/admin/users/{id}",
		Summary:     "Read a user",
		Description: "A user with their devices, active sessions, and the number of passkeys and groups.",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminGetUser)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminDisableUser",
		Method:      http.MethodPost,
		Path:        "/v1/admin/users/{id}/disable",
		Summary:     "Disable a user",
		Description: "Cuts the account off at once: every session ends and open streams close, the user cannot sign in until " +
			"enabled again, every device leaves its groups (each group gets a `remove_device` notice, reason `user_disabled`, asking " +
			"the remaining members to commit the MLS removal) and the devices' key packages are deleted. Passkeys and devices stay. " +
			"You cannot disable yourself or the last enabled admin (409). Disabling a disabled user changes nothing. Recorded in " +
			"the audit log.",
	}, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity), h.adminDisableUser)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminEnableUser",
		Method:      http.MethodPost,
		Path:        "/v1/admin/users/{id}/enable",
		Summary:     "Enable a user",
		Description: "Lifts a suspension: the user may sign in again with a passkey. Recorded in the audit log.",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminEnableUser)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminRevokeUserSessions",
		Method:      http.MethodPost,
		Path:        "/v1/admin/users/{id}/revoke-sessions",
		Summary:     "Revoke all of a user's sessions",
		Description: "Ends every session of the user on every device at once (their tokens answer 401 and open streams close). " +
			"Devices stay and may sign in again with a passkey. Recorded in the audit log.",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminRevokeUserSessions)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminRemoveUserFromGroups",
		Method:      http.MethodPost,
		Path:        "/v1/admin/users/{id}/remove-from-groups",
		Summary:     "Remove a user from all groups",
		Description: "Stops routing every group's messages to the user's devices at once and posts to each group a notice " +
			"(`remove_device`, reason `removed_by_admin`) asking the remaining members to commit the MLS removal, which only " +
			"they can do. The user's key packages are deleted so no pending Welcome adds them back. Recorded in the audit log.",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminRemoveUserFromGroups)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID:   "adminDeleteUser",
		Method:        http.MethodDelete,
		Path:          "/v1/admin/users/{id}",
		Summary:       "Delete a user",
		DefaultStatus: http.StatusNoContent,
		Description: "Deletes the account and everything that belongs to it: its devices leave their groups (with notices, " +
			"reason `user_deleted`), its sessions end, and its passkeys, devices, key packages, memberships and device messages " +
			"are deleted. Group messages it sent stay in the groups' histories. You cannot delete yourself or the last enabled " +
			"admin (409). Needs a step-up by the admin's own passkey, made for delete_user and this user (`Sovereign-Step-Up` " +
			"header; 403 `step_up_required` without a valid one). Recorded in the audit log.",
	}, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity), h.adminDeleteUser)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID:   "adminCreateInvite",
		Method:        http.MethodPost,
		Path:          "/v1/admin/invites",
		Summary:       "Create an invite",
		DefaultStatus: http.StatusCreated,
		Description: "Makes an invite with a role, an expiry and a number of uses. The code is in this response only. An " +
			"invite granting the admin role needs a step-up by the admin's own passkey, made for admin_invite " +
			"(`Sovereign-Step-Up` header; 403 `step_up_required` without a valid one), so a stolen admin token alone cannot " +
			"mint admins. Recorded in the audit log (without the code).",
	}, http.StatusUnprocessableEntity), h.adminCreateInvite)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminListInvites",
		Method:      http.MethodGet,
		Path:        "/v1/admin/invites",
		Summary:     "List invites",
		Description: "Usable invites, newest first; with `all=true` also expired, used-up and revoked ones (up to 1000).",
	}, http.StatusUnprocessableEntity), h.adminListInvites)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID:   "adminRevokeInvite",
		Method:        http.MethodDelete,
		Path:          "/v1/admin/invites/{id}",
		Summary:       "Revoke an invite",
		DefaultStatus: http.StatusNoContent,
		Description:   "Makes the invite unusable at once. Revoking a revoked invite changes nothing. Recorded in the audit log.",
	}, http.StatusNotFound, http.StatusUnprocessableEntity), h.adminRevokeInvite)
}

func (h *handler) adminListUsers(ctx context.Context, in *AdminUsersInput) (*AdminUsersOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	users, next, err := h.d.Store.ListUsers(ctx, store.UserQuery{Search: in.Q, After: in.After, Limit: in.Limit})
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AdminUsersOutput{}
	out.Body.Users = make([]AdminUser, len(users))
	for i, u := range users {
		out.Body.Users[i] = adminUser(u)
	}
	if next != "" {
		out.Body.NextAfter = &next
	}
	return out, nil
}

func (h *handler) adminUserDetail(ctx context.Context, id string) (*AdminUserDetail, error) {
	d, err := h.d.Store.UserDetail(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &AdminUserDetail{AdminUser: adminUser(d.UserSummary), Passkeys: d.Passkeys, Groups: d.Groups,
		DeviceList: make([]AdminDevice, len(d.DeviceList)), Sessions: make([]AdminSession, len(d.Sessions))}
	for i, dv := range d.DeviceList {
		out.DeviceList[i] = AdminDevice{ID: dv.ID, Name: dv.Name, CreatedAt: dv.CreatedAt, LastSeenAt: dv.LastSeenAt,
			RevokedAt: dv.RevokedAt, ActiveSessions: dv.ActiveSessions}
	}
	for i, s := range d.Sessions {
		out.Sessions[i] = AdminSession{ID: s.ID, DeviceID: s.DeviceID, DeviceName: s.DeviceName, CreatedAt: s.CreatedAt,
			LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt}
	}
	return out, nil
}

func (h *handler) adminGetUser(ctx context.Context, in *AdminUserInput) (*AdminUserOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	d, err := h.adminUserDetail(ctx, in.ID)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &AdminUserOutput{Body: *d}, nil
}

// userChange runs an action on a user and answers with the user after it.
func (h *handler) userChange(ctx context.Context, id string, act func(models.Actor) (sessions, groups int, err error)) (*AdminUserChangeOutput, error) {
	_, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	sessions, groups, err := act(actor)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	d, err := h.adminUserDetail(ctx, id)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AdminUserChangeOutput{}
	out.Body.User, out.Body.SessionsRevoked, out.Body.Groups = d.AdminUser, sessions, groups
	return out, nil
}

func (h *handler) adminDisableUser(ctx context.Context, in *AdminUserInput) (*AdminUserChangeOutput, error) {
	return h.userChange(ctx, in.ID, func(a models.Actor) (int, int, error) {
		return h.d.Store.DisableUser(ctx, a, in.ID)
	})
}

func (h *handler) adminEnableUser(ctx context.Context, in *AdminUserInput) (*AdminUserChangeOutput, error) {
	return h.userChange(ctx, in.ID, func(a models.Actor) (int, int, error) {
		return 0, 0, h.d.Store.EnableUser(ctx, a, in.ID)
	})
}

func (h *handler) adminRevokeUserSessions(ctx context.Context, in *AdminUserInput) (*AdminUserChangeOutput, error) {
	return h.userChange(ctx, in.ID, func(a models.Actor) (int, int, error) {
		n, err := h.d.Store.RevokeUserSessions(ctx, a, in.ID)
		return n, 0, err
	})
}

func (h *handler) adminRemoveUserFromGroups(ctx context.Context, in *AdminUserInput) (*AdminUserChangeOutput, error) {
	return h.userChange(ctx, in.ID, func(a models.Actor) (int, int, error) {
		n, err := h.d.Store.RemoveUserFromGroups(ctx, a, in.ID)
		return 0, n, err
	})
}

func (h *handler) adminDeleteUser(ctx context.Context, in *AdminDeleteUserInput) (*struct{}, error) {
	_, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.d.Store.DeleteUser(ctx, actor, in.ID, h.adminStepUp(ctx, in.StepUp, models.StepUpDeleteUser, in.ID)); err != nil {
		return nil, h.stepUpRefused(ctx, actor, models.StepUpDeleteUser, in.ID, err)
	}
	return nil, nil
}

func (h *handler) adminCreateInvite(ctx context.Context, in *CreateInviteInput) (*CreateInviteOutput, error) {
	p, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	role := models.Role(in.Body.Role)
	var su *store.StepUpCheck
	if role == models.RoleAdmin {
		su = h.adminStepUp(ctx, in.StepUp, models.StepUpAdminInvite, "")
	}
	code, inv, err := h.d.Store.AdminCreateInvite(ctx, actor, store.NewInvite{Role: role, CreatedBy: p.UserID,
		TTL: time.Duration(in.Body.ExpiresInHours) * time.Hour, Uses: in.Body.Uses}, su)
	if err != nil {
		return nil, h.stepUpRefused(ctx, actor, models.StepUpAdminInvite, "", err)
	}
	out := &CreateInviteOutput{}
	out.Body.Invite = adminInvite(store.InviteInfo{Invite: *inv, CreatedByUsername: p.Username, Status: store.InviteActive})
	out.Body.Code, out.Body.Link = code, h.d.Config.InviteLinkFor(code, inv.Role == models.RoleAdmin)
	return out, nil
}

func (h *handler) adminListInvites(ctx context.Context, in *AdminInvitesInput) (*AdminInvitesOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	list, err := h.d.Store.ListInvites(ctx, in.All)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AdminInvitesOutput{}
	out.Body.Invites = make([]AdminInvite, len(list))
	for i, inv := range list {
		out.Body.Invites[i] = adminInvite(inv)
	}
	return out, nil
}

func (h *handler) adminRevokeInvite(ctx context.Context, in *AdminInviteInput) (*struct{}, error) {
	_, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.d.Store.RevokeInvite(ctx, actor, in.ID); err != nil {
		return nil, h.fail(ctx, err)
	}
	return nil, nil
}
