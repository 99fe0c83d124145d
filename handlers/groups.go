package handlers

import (
	"context"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/ratelimit"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
)

// Tags of the delivery operations.
const (
	TagGroups = "groups"
)

// groupIDDoc documents the one encoding of group ids in paths and bodies.
const groupIDDoc = "MLS group_id bytes, base64url without padding (RFC 4648 §5). 1 to 255 bytes, chosen by the group's creator."

// GroupPath names a group in a URL.
type GroupPath struct {
	GroupID string `path:"group_id" pattern:"^[A-Za-z0-9_-]+$" minLength:"2" maxLength:"340" doc:"MLS group_id bytes, base64url without padding (RFC 4648 §5)" example:"c292ZXJlaWduLWZpeHR1cmUtZ3JvdXAtMDAwMQ"`
}

// IdempotencyHeader makes a send safe to retry.
type IdempotencyHeader struct {
	IdempotencyKey string `header:"Idempotency-Key" pattern:"^[!-~]+$" minLength:"1" maxLength:"255" doc:"Optional key (1 to 255 printable ASCII characters, e.g. a UUID) naming this send for this device. A retry with the same key returns the first result (same id and seq) and stores nothing; the same key with a different request is refused (422 idempotency_key_reused). Keys are remembered for at least 24 hours."`
}

// MemberBody is one member device.
type MemberBody struct {
	DeviceID     string         `json:"device_id" doc:"Member device"`
	UserID       string         `json:"user_id" doc:"The device's user"`
	Username     string         `json:"username" doc:"The user's username"`
	DisplayName  string         `json:"display_name" doc:"The user's display name (the user may change it: show it, but identify people by username)"`
	JoinedSeq    int64          `json:"joined_seq" doc:"The device receives the group's events with a sequence number above this"`
	SignatureKey string         `json:"signature_key,omitempty" doc:"The device's MLS signature public key bound to a passkey, base64url; absent when unbound"`
	Binding      *AssertionBody `json:"binding,omitempty" doc:"The passkey assertion over the device binding challenge (the user's passkeys come from the directory); absent when unbound"`
}

// GroupSummaryBody is a group in a list.
type GroupSummaryBody struct {
	ID        string    `json:"id" doc:"MLS group_id bytes, base64url without padding"`
	Epoch     uint64    `json:"epoch" doc:"Current MLS epoch: the epoch the next commit must carry"`
	CreatedAt time.Time `json:"created_at" doc:"When the group was created"`
	JoinedSeq int64     `json:"joined_seq" doc:"This device receives the group's events with a sequence number above this"`
}

// GroupBody is one group with its members.
type GroupBody struct {
	GroupSummaryBody
	GroupInfo []byte       `json:"group_info,omitempty" doc:"Latest MLSMessage(GroupInfo) a committer supplied for the current epoch (base64), if any"`
	BytesUsed int64        `json:"bytes_used" doc:"Stored message bytes counted against the group's quota"`
	Members   []MemberBody `json:"members" doc:"Member devices now"`
}

func groupSummary(g *models.Group) GroupSummaryBody {
	return GroupSummaryBody{ID: encodeGroupID(g.ID), Epoch: g.Epoch, CreatedAt: g.CreatedAt, JoinedSeq: g.JoinedSeq}
}

func groupBody(g *models.Group) GroupBody {
	b := GroupBody{GroupSummaryBody: groupSummary(g), GroupInfo: g.GroupInfo, BytesUsed: g.BytesUsed, Members: make([]MemberBody, len(g.Members))}
	for i, m := range g.Members {
		b.Members[i] = MemberBody{DeviceID: m.DeviceID, UserID: m.UserID, Username: m.Username, DisplayName: m.DisplayName, JoinedSeq: m.JoinedSeq,
			SignatureKey: signatureKey(m.SignatureKey), Binding: assertionBody(m.Binding)}
	}
	return b
}

func encodeGroupID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func decodeGroupID(s string) ([]byte, error) {
	id, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(id) == 0 || len(id) > store.MaxGroupIDBytes {
		return nil, models.Errorf(models.EINVALID, "invalid_group_id", "a group id is 1 to %d bytes in base64url without padding", store.MaxGroupIDBytes)
	}
	return id, nil
}

// CreateGroupInput creates a group.
type CreateGroupInput struct {
	Body struct {
		GroupID   string `json:"group_id" pattern:"^[A-Za-z0-9_-]+$" minLength:"2" maxLength:"340" doc:"MLS group_id bytes, base64url without padding; choose 16 or more random bytes"`
		GroupInfo []byte `json:"group_info,omitempty" doc:"Optional MLSMessage(GroupInfo) of the group at epoch 0 (base64)"`
	}
}

// GroupOutput is one group.
type GroupOutput struct {
	Body GroupBody
}

// ListGroupsOutput lists the device's groups.
type ListGroupsOutput struct {
	Body struct {
		Groups []GroupSummaryBody `json:"groups" doc:"Groups this device is a member of, oldest membership first"`
	}
}

// HistoryInput pages through a group's messages.
type HistoryInput struct {
	GroupPath
	After int64 `query:"after" minimum:"0" doc:"Return events with a sequence number above this (0: from the start of this device's membership)"`
	Limit int   `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"Most events to return"`
}

// EventBody is one stored event as a device sees it.
type EventBody struct {
	Seq               int64     `json:"seq" doc:"Global sequence number: events are ordered by it"`
	ID                string    `json:"id" doc:"Server-assigned UUID of the event"`
	Kind              string    `json:"kind" enum:"application,proposal,commit,welcome,notice" doc:"What the payload is"`
	GroupID           string    `json:"group_id,omitempty" doc:"MLS group_id, base64url without padding"`
	Epoch             *uint64   `json:"epoch,omitempty" doc:"Epoch of the message (for a welcome: the epoch it joins; for a notice: the group's epoch when posted)"`
	SenderDeviceID    string    `json:"sender_device_id,omitempty" doc:"Sending device; absent for server notices"`
	RecipientDeviceID string    `json:"recipient_device_id,omitempty" doc:"Set on events addressed to one device (welcomes)"`
	ServerTime        time.Time `json:"server_time" doc:"Server timestamp (microsecond precision); never decreases along the sequence"`
	Payload           []byte    `json:"payload" doc:"The MLSMessage as sent (base64); for notices, a JSON document with a type (for type new_device, see the NewDeviceNotice schema)"`
	PrevHash          []byte    `json:"prev_hash,omitempty" doc:"Set on the group's chained events (every group event all members receive alike; not on welcomes or device notices): the hash of the group's previous chained event, 32 zero bytes for its first (base64). See docs/verification.md"`
	Hash              []byte    `json:"hash,omitempty" doc:"Set with prev_hash: SHA-256 over a label, group_id, prev_hash, seq, kind, epoch, sender_device_id and payload (base64). See docs/verification.md"`
}

func eventBody(e *models.Event) EventBody {
	b := EventBody{Seq: e.Seq, ID: e.ID, Kind: string(e.Kind), Epoch: e.Epoch, SenderDeviceID: e.SenderDeviceID,
		RecipientDeviceID: e.RecipientDeviceID, ServerTime: e.ServerTime, Payload: e.Payload,
		PrevHash: e.PrevHash, Hash: e.Hash}
	if e.GroupID != nil {
		b.GroupID = encodeGroupID(e.GroupID)
	}
	return b
}

// HistoryOutput is a page of a group's events.
type HistoryOutput struct {
	Body struct {
		Events  []EventBody `json:"events" doc:"Events in sequence order"`
		Next    int64       `json:"next" doc:"Pass as after to get the next page"`
		HasMore bool        `json:"has_more" doc:"Whether more events follow"`
	}
}

// SendMessageInput is an application or proposal message.
type SendMessageInput struct {
	GroupPath
	IdempotencyHeader
	Body struct {
		Message []byte `json:"message" minLength:"1" doc:"The whole MLSMessage (base64): a PrivateMessage (application or proposal) or a PublicMessage (proposal). At most --max-message-bytes (64 KiB) decoded."`
	}
}

// ReceiptBody is the server's record of a stored message.
type ReceiptBody struct {
	ID         string    `json:"id" doc:"Server-assigned UUID"`
	Seq        int64     `json:"seq" doc:"Global sequence number"`
	ServerTime time.Time `json:"server_time" doc:"Server timestamp (microsecond precision)"`
	Kind       string    `json:"kind" enum:"application,proposal,commit" doc:"Kind of the stored message"`
	Epoch      uint64    `json:"epoch" doc:"The message's epoch"`
}

func receiptBody(r *models.Receipt) ReceiptBody {
	return ReceiptBody{ID: r.ID, Seq: r.Seq, ServerTime: r.ServerTime, Kind: string(r.Kind), Epoch: r.Epoch}
}

// SendMessageOutput answers a stored message.
type SendMessageOutput struct {
	Replayed bool `header:"Idempotent-Replayed" doc:"true when this answers a retry of an earlier request with the same Idempotency-Key"`
	Body     ReceiptBody
}

// CommitInput is a commit bundle.
type CommitInput struct {
	GroupPath
	IdempotencyHeader
	Body struct {
		Commit         []byte   `json:"commit" minLength:"1" doc:"MLSMessage (PublicMessage or PrivateMessage) of content type commit, at the group's current epoch (base64)"`
		Welcome        []byte   `json:"welcome,omitempty" doc:"MLSMessage(Welcome) for the members the commit adds (base64); each KeyPackageRef it addresses must have been claimed by this device"`
		GroupInfo      []byte   `json:"group_info,omitempty" doc:"MLSMessage(GroupInfo) of the new epoch (base64), kept for members and joiners"`
		RemovedDevices []string `json:"removed_devices,omitempty" maxItems:"1000" doc:"Devices the commit removes: they receive this commit and nothing after it"`
	}
}

// WelcomeReceiptBody is a Welcome stored for one added device.
type WelcomeReceiptBody struct {
	DeviceID string `json:"device_id" doc:"Added device the Welcome is addressed to"`
	ID       string `json:"id" doc:"Server-assigned UUID of the Welcome event"`
	Seq      int64  `json:"seq" doc:"Sequence number of the Welcome event"`
}

// CommitOutput answers an accepted commit bundle.
type CommitOutput struct {
	Replayed bool `header:"Idempotent-Replayed" doc:"true when this answers a retry of an earlier request with the same Idempotency-Key"`
	Body     struct {
		Commit         ReceiptBody          `json:"commit" doc:"The stored commit"`
		Epoch          uint64               `json:"epoch" doc:"The group's new epoch"`
		Welcomes       []WelcomeReceiptBody `json:"welcomes" doc:"One Welcome event per added device"`
		AddedDevices   []string             `json:"added_devices" doc:"Devices that became members from the commit's sequence number"`
		RemovedDevices []string             `json:"removed_devices" doc:"Devices whose membership ended with the commit"`
	}
}

// messageLimits returns the largest MLS message and the body limits derived
// from it (base64 inflates by 4/3; plus room for JSON).
func (h *handler) messageLimits() (maxMsg int, sendBody, commitBody int64) {
	maxMsg = h.d.Config.Limits.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = config.Default().Limits.MaxMessageBytes
	}
	b64 := int64(base64.StdEncoding.EncodedLen(maxMsg))
	return maxMsg, b64 + 4096, 3*b64 + 64*1024
}

func (h *handler) checkSize(what string, b []byte, maxMsg int) error {
	if len(b) > maxMsg {
		return models.Errorf(models.ETOOLARGE, "message_too_large", "%s is %d bytes; the limit is %d bytes", what, len(b), maxMsg)
	}
	return nil
}

// messagesPerMinute is the send limit in force (the run-time setting).
func (h *handler) messagesPerMinute() int {
	if h.d.Settings != nil {
		return h.d.Settings.Get().MessagesPerMinute
	}
	return h.d.Config.Limits.MessagesPerMinute
}

// groupsPerHour is the group-creation limit in force (the run-time
// setting).
func (h *handler) groupsPerHour() int {
	if h.d.Settings != nil {
		return h.d.Settings.Get().GroupsPerHour
	}
	return h.d.Config.Limits.GroupsPerHour
}

// allowSend takes one token from the user's message budget.
func (h *handler) allowSend(p *models.Principal) error {
	if ok, wait := h.sendLimiter.Allow(p.UserID, 1); !ok {
		e := models.Errorf(models.ERATELIMIT, "rate_limited", "too many messages: at most %d per minute per user", h.messagesPerMinute())
		e.RetryAfter = wait
		return e
	}
	return nil
}

func (h *handler) registerGroups(api huma.API) {
	perMin := h.d.Config.Limits.MessagesPerMinute
	h.sendLimiter = ratelimit.New(perMin, perMin, h.now)
	h.followSetting(func(v settings.Values) { h.sendLimiter.SetRate(v.MessagesPerMinute, v.MessagesPerMinute) })
	lim := h.d.Config.Limits
	h.groupLimiter = ratelimit.NewPer(lim.GroupsPerHour, lim.GroupsPerHour, time.Hour, h.now)
	setCaps := func(groups, devices int) {
		if h.d.Store != nil { // nil when only the OpenAPI document is built
			h.d.Store.SetUserCaps(groups, devices)
		}
	}
	setCaps(lim.GroupsPerUser, lim.DevicesPerUser)
	h.followSetting(func(v settings.Values) {
		h.groupLimiter.SetRatePer(v.GroupsPerHour, v.GroupsPerHour, time.Hour)
		setCaps(v.GroupsPerUser, v.DevicesPerUser)
	})
	maxMsg, sendBody, commitBody := h.messageLimits()

	huma.Register(api, huma.Operation{
		OperationID: "createGroup",
		Method:      http.MethodPost,
		Path:        "/v1/groups",
		Summary:     "Create a group",
		Description: "Creates a group with a client-chosen MLS group id. The calling device is its first member, at epoch 0. " + groupIDDoc +
			" Choose the id at random (the SDKs use 32 random bytes): an id that is taken answers 409 `group_exists` to a device that " +
			"is a member of that group, and to anyone else the same 403 `not_member` every group operation gives for a group the " +
			"caller is not a member of, whether or not it exists. Each user has budgets (admin settings): at most `groups_per_hour` " +
			"groups created per hour, all its devices together (429 `group_rate_limited` with Retry-After), and no new group once " +
			"its devices are members of `groups_per_user` groups (507 `group_limit_reached`: leave a group first).",
		Tags:          []string{TagGroups},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  sendBody,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *CreateGroupInput) (*GroupOutput, error) {
		p := PrincipalFrom(ctx)
		id, err := decodeGroupID(in.Body.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if err := h.checkSize("group_info", in.Body.GroupInfo, maxMsg); err != nil {
			return nil, h.fail(ctx, err)
		}
		if ok, wait := h.groupLimiter.Allow(p.UserID, 1); !ok {
			e := models.Errorf(models.ERATELIMIT, "group_rate_limited", "too many new groups: at most %d per hour per user", h.groupsPerHour())
			e.RetryAfter = wait
			return nil, h.fail(ctx, e)
		}
		g, err := h.d.Store.CreateGroup(ctx, p.DeviceID, id, in.Body.GroupInfo)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &GroupOutput{Body: groupBody(g)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listGroups",
		Method:      http.MethodGet,
		Path:        "/v1/groups",
		Summary:     "List my groups",
		Description: "Lists the groups the calling device is a member of now.",
		Tags:        []string{TagGroups},
		Security:    bearer,
		Errors:      []int{http.StatusUnauthorized},
	}, func(ctx context.Context, _ *struct{}) (*ListGroupsOutput, error) {
		gs, err := h.d.Store.ListGroups(ctx, PrincipalFrom(ctx).DeviceID)
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
		OperationID: "getGroup",
		Method:      http.MethodGet,
		Path:        "/v1/groups/{group_id}",
		Summary:     "Get a group",
		Description: "Returns the group's current epoch, latest GroupInfo and member devices with their users. Only member devices may read it; " +
			"anyone else gets 403 not_member, whether or not the group exists.",
		Tags:     []string{TagGroups},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *GroupPath) (*GroupOutput, error) {
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		g, err := h.d.Store.GetGroup(ctx, PrincipalFrom(ctx).DeviceID, id)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &GroupOutput{Body: groupBody(g)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listGroupMessages",
		Method:      http.MethodGet,
		Path:        "/v1/groups/{group_id}/messages",
		Summary:     "Read a group's history",
		Description: "Returns the group's events after a sequence number, in order: only those sent while the calling device was a member " +
			"(over each of its membership intervals) and the Welcome addressed to it. Devices that were never members get 403 not_member.",
		Tags:     []string{TagGroups},
		Security: bearer,
		Errors:   []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *HistoryInput) (*HistoryOutput, error) {
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		evs, more, err := h.d.Store.GroupHistory(ctx, PrincipalFrom(ctx).DeviceID, id, in.After, in.Limit)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &HistoryOutput{}
		out.Body.Events = make([]EventBody, len(evs))
		out.Body.Next = in.After
		for i, e := range evs {
			out.Body.Events[i] = eventBody(e)
			out.Body.Next = e.Seq
		}
		out.Body.HasMore = more
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "sendMessage",
		Method:      http.MethodPost,
		Path:        "/v1/groups/{group_id}/messages",
		Summary:     "Send an application or proposal message",
		Description: "Stores an MLS application message (PrivateMessage) or proposal (Public or PrivateMessage) and delivers it to the group's member devices. " +
			"The message's group_id must be the URL's (422 otherwise) and its epoch within current-2 … current (409 with current_epoch otherwise). " +
			"Limits: --max-message-bytes (413), --messages-per-minute per user (429 with Retry-After), --group-quota-bytes per group (507). " +
			"With --require-padding, an application message whose padded content (the PrivateMessage's ciphertext less its 16-byte " +
			"AEAD tag) is not a padding bucket (at least 256 bytes and a Padmé length; the SDKs pad so by default) is refused with " +
			"422 `unpadded_message`.",
		Tags:          []string{TagGroups},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  sendBody,
		// The hottest operation: Huma's generic body validation parses the
		// JSON a second time into maps and runs a regular expression over
		// the whole base64 payload (about a fifth of the server's CPU time
		// per message). The body has one field; decoding it into the
		// struct already rejects what is not base64, and the checks below
		// do the rest.
		SkipValidateBody: true,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *SendMessageInput) (_ *SendMessageOutput, err error) {
		defer h.countDelivery("message", &err)
		p := PrincipalFrom(ctx)
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		if len(in.Body.Message) == 0 {
			return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
				Message: "expected a non-empty base64 MLSMessage", Location: "body.message"})
		}
		if err := h.checkSize("message", in.Body.Message, maxMsg); err != nil {
			return nil, h.fail(ctx, err)
		}
		if err := h.allowSend(p); err != nil {
			return nil, h.fail(ctx, err)
		}
		r, replayed, err := h.d.Store.SendMessage(ctx, store.SendInput{DeviceID: p.DeviceID, GroupID: id, Message: in.Body.Message, IdempotencyKey: in.IdempotencyKey})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		return &SendMessageOutput{Replayed: replayed, Body: receiptBody(r)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "commitGroup",
		Method:      http.MethodPost,
		Path:        "/v1/groups/{group_id}/commits",
		Summary:     "Commit: advance the group's epoch",
		Description: "Applies a commit bundle atomically: the commit, an optional Welcome, the GroupInfo of the new epoch and the devices it removes. " +
			"Exactly one commit wins each epoch: the commit must carry the group's current epoch and come from a member device; otherwise 409 " +
			"with current_epoch (fetch and process the winning commit, then build yours again). Devices whose claimed KeyPackageRefs the Welcome " +
			"addresses become members from the commit's sequence number and receive the Welcome; removed devices receive the commit and nothing after. " +
			"A Welcome ref this device never claimed is refused (422 welcome_ref_not_claimed). A commit that adds members must fit the group's " +
			"quota (`--group-quota-bytes`) with its Welcome stored for each added device and the GroupInfo's growth (507 group_quota_exceeded); " +
			"a commit that adds nobody is accepted in a full group, so a compromised device can always be removed.",
		Tags:          []string{TagGroups},
		Security:      bearer,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  commitBody,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *CommitInput) (_ *CommitOutput, err error) {
		defer h.countDelivery("commit", &err)
		p := PrincipalFrom(ctx)
		id, err := decodeGroupID(in.GroupID)
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		for _, part := range []struct {
			name string
			b    []byte
		}{{"commit", in.Body.Commit}, {"welcome", in.Body.Welcome}, {"group_info", in.Body.GroupInfo}} {
			if err := h.checkSize(part.name, part.b, maxMsg); err != nil {
				return nil, h.fail(ctx, err)
			}
		}
		if err := h.allowSend(p); err != nil {
			return nil, h.fail(ctx, err)
		}
		res, replayed, err := h.d.Store.CommitBundle(ctx, store.CommitInput{DeviceID: p.DeviceID, GroupID: id, Commit: in.Body.Commit,
			Welcome: in.Body.Welcome, GroupInfo: in.Body.GroupInfo, RemoveDevices: in.Body.RemovedDevices, IdempotencyKey: in.IdempotencyKey})
		if err != nil {
			return nil, h.fail(ctx, err)
		}
		out := &CommitOutput{Replayed: replayed}
		out.Body.Commit = receiptBody(&res.Commit)
		out.Body.Epoch = res.Epoch
		out.Body.AddedDevices = res.AddedDevices
		out.Body.RemovedDevices = res.RemovedDevices
		out.Body.Welcomes = make([]WelcomeReceiptBody, len(res.Welcomes))
		for i, w := range res.Welcomes {
			out.Body.Welcomes[i] = WelcomeReceiptBody{DeviceID: w.DeviceID, ID: w.ID, Seq: w.Seq}
		}
		return out, nil
	})
}
