package handlers

import (
	"context"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/models"
)

// GroupInfoOutput is a group's current GroupInfo, for an external join.
type GroupInfoOutput struct {
	Body struct {
		GroupID   string `json:"group_id" doc:"MLS group_id, base64url without padding"`
		Epoch     uint64 `json:"epoch" doc:"The group's current epoch: the external commit must carry it"`
		GroupInfo []byte `json:"group_info" doc:"MLSMessage(GroupInfo) of the current epoch (base64), with the external_pub and ratchet_tree extensions when the committer included them"`
	}
}

// LeaveGroupInput is a self-Remove proposal.
type LeaveGroupInput struct {
	GroupPath
	Body struct {
		Proposal []byte `json:"proposal" minLength:"1" doc:"MLSMessage (base64): a PublicMessage proposal from this device's leaf, of type Remove, removing that same leaf, at the group's current epoch"`
	}
}

// LeaveGroupOutput answers a leave.
type LeaveGroupOutput struct {
	Body struct {
		Proposal     ReceiptBody `json:"proposal" doc:"The stored proposal: this device received it and nothing after"`
		GroupDeleted bool        `json:"group_deleted" doc:"True when this device was the last member: the group and its messages are deleted"`
	}
}

// DeleteMeInput confirms an account deletion.
type DeleteMeInput struct {
	StepUp string `header:"Sovereign-Step-Up" maxLength:"128" doc:"Step-up grant from stepUpFinish, made for delete_account by this session within the last 60 seconds; single use. Without a valid one: 403 step_up_required."`
	Body   struct {
		ConfirmUsername string `json:"confirm_username" minLength:"1" maxLength:"64" doc:"Your username, typed again: a guard against accidents"`
	}
}

func (h *handler) registerPeople(api huma.API) {
	// Notice payloads travel base64 inside EventBody.payload; their schema
	// is a component of its own so that clients can decode them.
	api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[models.NewDeviceNotice](), true, "")
	huma.Register(api, huma.Operation{
		OperationID: "listJoinableGroups",
		Method:      http.MethodGet,
		Path:        "/v1/me/groups",
		Summary:     "List groups my other devices are in",
		Description: "Groups where another active device of your user is a member and this device is not: what a new device joins " +
			"by external commit (GET /v1/groups/{group_id}/group-info, then POST /v1/groups/{group_id}/commits).",
		Tags:     []string{TagGroups},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized},
	}, func(ctx context.Context, _ *struct{}) (*ListGroupsOutput, error) {
		p := PrincipalFrom(ctx)
		gs, err := h.d.Store.JoinableGroups(ctx, p.UserID, p.DeviceID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &ListGroupsOutput{}
		out.Body.Groups = make([]GroupSummaryBody, len(gs))
		for i, g := range gs {
			out.Body.Groups[i] = groupSummary(g)
		}
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "getGroupInfo",
		Method:      http.MethodGet,
		Path:        "/v1/groups/{group_id}/group-info",
		Summary:     "Get a group's GroupInfo to join it by external commit",
		Description: "For a device of a user who has an active device in the group: another device (a new device joining its " +
			"user's groups) or this device itself (rejoining after its feed expired, 410). Returns the GroupInfo of the current " +
			"epoch, from which an external commit (RFC 9420 §12.4.3.2) is built and sent to POST /v1/groups/{group_id}/commits. " +
			"Anyone else gets 403 not_member, whether or not the group exists. 409 group_info_unavailable when the last commit " +
			"stored no GroupInfo.",
		Tags:     []string{TagGroups},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *GroupPath) (*GroupInfoOutput, error) {
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		gi, epoch, err := h.d.Store.GroupInfoForJoin(ctx, PrincipalFrom(ctx).UserID, id)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &GroupInfoOutput{}
		out.Body.GroupID, out.Body.Epoch, out.Body.GroupInfo = in.GroupID, epoch, gi
		return out, nil
	})

	_, sendBody, _ := h.messageLimits()
	maxMsg := h.d.Config.Limits.MaxMessageBytes
	huma.Register(api, huma.Operation{
		OperationID: "leaveGroup",
		Method:      http.MethodPost,
		Path:        "/v1/groups/{group_id}/leave",
		Summary:     "Leave a group",
		Description: "A member cannot commit its own removal (RFC 9420), so the device sends a Remove proposal for its own leaf " +
			"as a PublicMessage. The server checks it from the clear bytes (member sender at leaf i, one Remove of leaf i, current " +
			"epoch; against the stored ratchet tree when there is one), stores and publishes it, and ends the device's membership " +
			"at once: it receives the proposal and nothing after. The proposal is kept by reference: the next commit of the epoch " +
			"must list the device in removed_devices (422 pending_removal_missing otherwise); members' clients commit it promptly. " +
			"When the device was the last member, the group is deleted with its messages.",
		Tags:          []string{TagGroups},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  sendBody,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, func(ctx context.Context, in *LeaveGroupInput) (*LeaveGroupOutput, error) {
		p := PrincipalFrom(ctx)
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if maxMsg > 0 {
			if err := h.checkSize("proposal", in.Body.Proposal, maxMsg); err != nil {
				return nil, h.fail(ctx, err)
			}
		}
		if err := h.allowSend(p); err != nil {
			return nil, h.fail(ctx, err)
		}
		res, err := h.d.Store.LeaveGroup(ctx, p.DeviceID, id, in.Body.Proposal)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &LeaveGroupOutput{}
		out.Body.Proposal, out.Body.GroupDeleted = receiptBody(&res.Proposal), res.GroupDeleted
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "deleteMe",
		Method:      http.MethodDelete,
		Path:        "/v1/me",
		Summary:     "Delete my account",
		Description: "Deletes your account for good, as an admin deletion does: every device leaves its groups first (the other " +
			"members are asked to commit the removal; groups left empty are deleted), every session ends, and your passkeys, " +
			"devices, key packages and device notices are deleted. Needs a step-up grant for delete_account in the " +
			"Sovereign-Step-Up header (403 step_up_required without a valid one) and your username typed again. The last enabled admin cannot delete their account (409 last_admin).",
		Tags:          []string{TagMe},
		Security:      bearer,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *DeleteMeInput) (*struct{}, error) {
		p := PrincipalFrom(ctx)
		u, err := h.d.Store.UserByID(ctx, p.UserID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if in.Body.ConfirmUsername != u.Username {
			return nil, h.fail(ctx, models.Errorf(models.EINVALID, "confirmation_mismatch", "confirm_username must be your username"))
		}
		if err := h.d.Store.TakeStepUp(ctx, h.stepUpCheck(ctx, in.StepUp, models.StepUpDeleteAccount, "")); err != nil {
			return nil, h.fail(ctx, err)
		}
		if err := h.d.Store.DeleteOwnAccount(ctx, h.actor(ctx, p)); err != nil {
			return nil, h.fail(ctx, err)
		}
		h.log().InfoContext(ctx, "account deleted by its user", "user_id", p.UserID)
		return nil, nil
	})
}
