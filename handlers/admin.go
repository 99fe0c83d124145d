package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/sovereign-im/sovereign/clientip"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/settings"
	"github.com/sovereign-im/sovereign/store"
)

// adminErrors are the problems every admin operation may answer.
var adminErrors = []int{http.StatusUnauthorized, http.StatusForbidden}

// adminOp fills the parts every admin operation shares: the admin tag, the
// bearer requirement, the 401/403 problems, and a guard that refuses
// non-admins with 403 before the request body is even read (so a member
// learns nothing from validation errors). Handlers call h.admin again, so
// no admin operation depends on registration alone.
func (h *handler) adminOp(api huma.API, op huma.Operation, extraErrors ...int) huma.Operation {
	op.Tags = []string{TagAdmin}
	op.Security = bearer
	op.Errors = append(append([]int{}, adminErrors...), extraErrors...)
	op.Description += "\n\nRequires the admin role (403 otherwise)."
	id := op.OperationID
	op.Middlewares = append(op.Middlewares, func(ctx huma.Context, next func(huma.Context)) {
		ctx = huma.WithValue(ctx, operationKey{}, id)
		if _, _, err := h.admin(ctx.Context()); err != nil {
			var p *Problem
			if errors.As(err, &p) {
				writeProblem(ctx, p) // keeps its code (admin_required)
				return
			}
			_ = huma.WriteErr(api, ctx, http.StatusInternalServerError, "internal error")
			return
		}
		next(ctx)
	})
	return op
}

// admin checks that the request is an admin's and returns the admin
// principal and the actor for the audit log, or the problem to answer. A
// member's attempt is itself recorded as a security event (the guard
// refuses it before the handler runs, so once per request).
func (h *handler) admin(ctx context.Context) (*models.Principal, models.Actor, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		if models.IsCode(err, models.EFORBIDDEN) {
			pr := PrincipalFrom(ctx)
			op, _ := ctx.Value(operationKey{}).(string)
			// One entry per member per minute with a count: a flood of
			// refusals must not flood the log.
			if aerr := h.d.Store.AuditAggregated(ctx, models.AuditEntry{Actor: h.actor(ctx, pr), Action: models.AuditAdminDenied,
				Detail: map[string]any{"operation": op}}, "operation", op); aerr != nil {
				h.log().WarnContext(ctx, "audit admin denial", "err", aerr)
			}
		}
		return nil, models.Actor{}, h.fail(ctx, err)
	}
	return p, h.actor(ctx, p), nil
}

// operationKey carries the operation id into handlers, for audit details.
type operationKey struct{}

func (h *handler) actor(ctx context.Context, p *models.Principal) models.Actor {
	ip := ""
	if a := clientip.From(ctx); a.IsValid() {
		ip = a.String()
	}
	return models.ActorOf(p, ip)
}

// followSetting calls f with the run-time settings now and after every
// change (rate limiters follow their setting this way). Without settings
// (building the OpenAPI document) it does nothing.
func (h *handler) followSetting(f func(settings.Values)) {
	if h.d.Settings != nil {
		h.d.Settings.Subscribe(f)
	}
}

// --- Stats ----------------------------------------------------------------

// AdminStats are the server's counts.
type AdminStats struct {
	Users             int    `json:"users" doc:"Accounts, disabled ones included"`
	Admins            int    `json:"admins" doc:"Accounts with the admin role"`
	DisabledUsers     int    `json:"disabled_users" doc:"Disabled accounts"`
	Devices           int    `json:"devices" doc:"Devices that are not revoked"`
	RevokedDevices    int    `json:"revoked_devices" doc:"Revoked devices"`
	ActiveSessions    int    `json:"active_sessions" doc:"Sessions neither expired nor revoked"`
	Groups            int    `json:"groups" doc:"MLS groups"`
	KeyPackages       int    `json:"key_packages" doc:"Key packages stored, last-resort ones included"`
	Messages          int    `json:"messages" doc:"Stored messages and notices (every kind of event)"`
	MessageBytes      int64  `json:"message_bytes" doc:"Payload bytes of the stored messages"`
	DatabaseBytes     int64  `json:"database_bytes" doc:"Size of the database file and its write-ahead log"`
	Attachments       int    `json:"attachments" doc:"Complete attachments stored"`
	AttachmentBytes   int64  `json:"attachment_bytes" doc:"Encrypted bytes of the complete attachments"`
	AttachmentUploads int    `json:"attachment_uploads" doc:"Attachment uploads in progress (deleted when incomplete for a day)"`
	OpenStreams       *int   `json:"open_streams" doc:"Event streams open now (SSE and long-poll); null when no real-time hub runs"`
	Version           string `json:"version" doc:"API version"`
	StartedAt         string `json:"started_at" format:"date-time" doc:"When this server process started"`
}

// AdminStatsOutput answers GET /v1/admin/stats.
type AdminStatsOutput struct {
	Body AdminStats
}

// --- Settings -------------------------------------------------------------

// AdminSettings shows the settings: what applies, what the configuration
// says and what an admin has overridden.
type AdminSettings struct {
	Effective settings.Values    `json:"effective" doc:"The values in force"`
	Defaults  settings.Values    `json:"defaults" doc:"The values from the configuration (flags, environment, file)"`
	Overrides settings.Overrides `json:"overrides" doc:"The values an admin set; absent keys follow the configuration"`
}

// AdminSettingsOutput answers the settings operations.
type AdminSettingsOutput struct {
	Body AdminSettings
}

// UpdateSettingsInput changes settings.
type UpdateSettingsInput struct {
	Body struct {
		Set   settings.Overrides `json:"set,omitempty" doc:"Values to set; each overrides its configuration option until reset"`
		Reset []string           `json:"reset,omitempty" maxItems:"16" doc:"Names of settings to return to the configured value, each once (422 duplicate_reset otherwise)" enum:"registration_mode,messages_per_minute,auth_per_minute,auth_burst,claims_per_minute,directory,groups_per_user,groups_per_hour,devices_per_user"`
	}
}

// --- Audit ----------------------------------------------------------------

// AuditActor is who did something.
type AuditActor struct {
	UserID   string `json:"user_id" format:"uuid" doc:"User id"`
	Username string `json:"username" doc:"Username at the time"`
	DeviceID string `json:"device_id,omitempty" format:"uuid" doc:"Device the request came from"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID         int64          `json:"id" doc:"Position in the log (the newest has the highest)"`
	At         time.Time      `json:"at" doc:"When it happened"`
	Action     string         `json:"action" doc:"What happened" example:"user.disable"`
	Actor      *AuditActor    `json:"actor,omitempty" doc:"Who did it; absent for anonymous clients and the server itself"`
	ClientIP   string         `json:"client_ip,omitempty" doc:"Client address the request came from"`
	TargetType string         `json:"target_type,omitempty" enum:"user,invite,settings,passkey,session" doc:"Kind of thing acted on"`
	TargetID   string         `json:"target_id,omitempty" doc:"Id of the thing acted on"`
	Detail     map[string]any `json:"detail" doc:"Action-specific facts (counts, changed values); never secrets"`
}

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries" nullable:"false"`
	NextBefore *int64       `json:"next_before" doc:"Pass as before= for the next (older) page; null on the last page"`
}

// AuditOutput answers GET /v1/admin/audit.
type AuditOutput struct {
	Body AuditPage
}

// AuditInput filters the audit log.
type AuditInput struct {
	Before int64     `query:"before" minimum:"1" doc:"Return entries older than this id (from next_before)"`
	Limit  int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"Page size"`
	Action string    `query:"action" maxLength:"64" pattern:"^[a-z_.]*$" doc:"An action (user.disable) or, ending with a dot, a family of actions (auth.)"`
	Actor  string    `query:"actor" maxLength:"36" doc:"Only entries by this user id"`
	Target string    `query:"target" maxLength:"64" doc:"Only entries about this target id"`
	Since  time.Time `query:"since" doc:"Only entries at or after this time (RFC 3339)"`
	Until  time.Time `query:"until" doc:"Only entries before this time (RFC 3339)"`
}

func auditEntry(e models.AuditEntry) AuditEntry {
	out := AuditEntry{ID: e.ID, At: e.At, Action: e.Action, ClientIP: e.Actor.IP, TargetType: e.TargetType,
		TargetID: e.TargetID, Detail: e.Detail}
	if out.Detail == nil {
		out.Detail = map[string]any{}
	}
	if e.Actor.UserID != "" {
		out.Actor = &AuditActor{UserID: e.Actor.UserID, Username: e.Actor.Username, DeviceID: e.Actor.DeviceID}
	}
	return out
}

var processStart = time.Now()

func (h *handler) registerAdmin(api huma.API) {
	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminStats",
		Method:      http.MethodGet,
		Path:        "/v1/admin/stats",
		Summary:     "Server statistics",
		Description: "Counts of users, devices, sessions, groups and stored messages, the database size and the number of open event streams.",
	}), h.adminStats)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminGetSettings",
		Method:      http.MethodGet,
		Path:        "/v1/admin/settings",
		Summary:     "Read the run-time settings",
		Description: "The settings an admin may change without a restart: the values in force, the configured defaults and the overrides stored in the database.",
	}), h.adminGetSettings)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminUpdateSettings",
		Method:      http.MethodPatch,
		Path:        "/v1/admin/settings",
		Summary:     "Change run-time settings",
		Description: "Sets some settings and resets others to the configuration, at once; every setting takes effect for the next request. Recorded in the audit log.",
	}, http.StatusUnprocessableEntity), h.adminUpdateSettings)

	huma.Register(api, h.adminOp(api, huma.Operation{
		OperationID: "adminAuditLog",
		Method:      http.MethodGet,
		Path:        "/v1/admin/audit",
		Summary:     "Read the audit log",
		Description: "Every admin action and security event (who, what, when, from which address), newest first, in pages. Filter by action or action family, actor, target and time.",
	}, http.StatusUnprocessableEntity), h.adminAudit)
}

func (h *handler) adminStats(ctx context.Context, _ *struct{}) (*AdminStatsOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	st, err := h.d.Store.Stats(ctx)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AdminStatsOutput{Body: AdminStats{
		Users: st.Users, Admins: st.Admins, DisabledUsers: st.DisabledUsers, Devices: st.Devices,
		RevokedDevices: st.RevokedDevices, ActiveSessions: st.ActiveSessions, Groups: st.Groups,
		KeyPackages: st.KeyPackages, Messages: st.Messages, MessageBytes: st.MessageBytes, DatabaseBytes: st.DBBytes,
		Attachments: st.Attachments.Count, AttachmentBytes: st.Attachments.Bytes, AttachmentUploads: st.Attachments.Incomplete,
		Version: apiVersion, StartedAt: processStart.UTC().Format(time.RFC3339),
	}}
	if h.d.Streams != nil {
		n := h.d.Streams.Open()
		out.Body.OpenStreams = &n
	}
	return out, nil
}

// apiVersion mirrors api.Version (handlers cannot import api).
const apiVersion = "1.0.0"

func (h *handler) settingsOutput() *AdminSettingsOutput {
	l := h.d.Settings
	return &AdminSettingsOutput{Body: AdminSettings{Effective: l.Get(), Defaults: l.Defaults(), Overrides: l.Overrides()}}
}

func (h *handler) adminGetSettings(ctx context.Context, _ *struct{}) (*AdminSettingsOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	return h.settingsOutput(), nil
}

func (h *handler) adminUpdateSettings(ctx context.Context, in *UpdateSettingsInput) (*AdminSettingsOutput, error) {
	_, actor, err := h.admin(ctx)
	if err != nil {
		return nil, err
	}
	set := in.Body.Set
	if err := set.Validate(); err != nil {
		return nil, h.fail(ctx, err)
	}
	// Uniqueness is checked here, not by the schema's uniqueItems: Huma's
	// uniqueItems check panics on an item that is not a string (a JSON
	// object in the array), before the enum check refuses it.
	seen := make(map[string]bool, len(in.Body.Reset))
	for i, name := range in.Body.Reset {
		if seen[name] {
			e := models.Errorf(models.EINVALID, "duplicate_reset", "reset names %q twice", name)
			e.Index = &i
			return nil, h.fail(ctx, e)
		}
		seen[name] = true
	}
	if len(set.Encode()) == 0 && len(in.Body.Reset) == 0 {
		return nil, h.fail(ctx, models.Errorf(models.EINVALID, "nothing_to_change", "give settings to set or to reset"))
	}
	live := h.d.Settings
	err = h.d.Store.UpdateSettings(ctx, actor, store.SettingsChange{Set: store.StoredSettings(set.Encode()), Reset: in.Body.Reset},
		func(all store.StoredSettings) {
			o, bad := settings.Decode(map[string]json.RawMessage(all))
			if len(bad) > 0 {
				h.log().Warn("ignoring stored settings this version cannot use", "keys", bad)
			}
			live.Set(o)
		})
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	h.log().InfoContext(ctx, "settings changed", "by", actor.UserID, "overrides", live.Overrides().String())
	return h.settingsOutput(), nil
}

func (h *handler) adminAudit(ctx context.Context, in *AuditInput) (*AuditOutput, error) {
	if _, _, err := h.admin(ctx); err != nil {
		return nil, err
	}
	if !in.Since.IsZero() && !in.Until.IsZero() && !in.Until.After(in.Since) {
		return nil, h.fail(ctx, models.Errorf(models.EINVALID, "invalid_range", "until must be after since"))
	}
	page, err := h.d.Store.ListAudit(ctx, store.AuditFilter{Before: in.Before, Action: in.Action, ActorUserID: in.Actor,
		TargetID: in.Target, Since: in.Since, Until: in.Until, Limit: in.Limit})
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	out := &AuditOutput{Body: AuditPage{Entries: make([]AuditEntry, len(page.Entries))}}
	for i, e := range page.Entries {
		out.Body.Entries[i] = auditEntry(e)
	}
	if page.NextBefore > 0 {
		out.Body.NextBefore = &page.NextBefore
	}
	return out, nil
}
