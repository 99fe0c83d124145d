package models

import "time"

// Actor is who performed an action: a signed-in user on one of their
// devices, or nobody (empty UserID) for anonymous clients and the server
// itself. IP is the client address as the server resolved it.
type Actor struct {
	UserID   string
	Username string
	DeviceID string
	IP       string
}

// ActorOf returns the actor a principal stands for, from address ip.
func ActorOf(p *Principal, ip string) Actor {
	if p == nil {
		return Actor{IP: ip}
	}
	return Actor{UserID: p.UserID, Username: p.Username, DeviceID: p.DeviceID, IP: ip}
}

// Audit actions. The audit log records every admin action and every
// security event under one of these names.
const (
	AuditUserDisable        = "user.disable"
	AuditUserEnable         = "user.enable"
	AuditUserDelete         = "user.delete"
	AuditUserRevokeSessions = "user.revoke_sessions"
	AuditUserRemoveGroups   = "user.remove_from_groups"
	AuditInviteCreate       = "invite.create"
	AuditInviteRevoke       = "invite.revoke"
	AuditSettingsUpdate     = "settings.update"
	AuditUserRegistered     = "auth.register"
	AuditAdminSignIn        = "auth.admin_login"
	AuditLoginFailed        = "auth.login_failed"
	AuditCloneWarning       = "auth.clone_warning"
	AuditAdminDenied        = "auth.admin_denied"
	AuditPruned             = "audit.pruned"
	AuditAccountDeleted     = "account.delete" // a user deleted their own account
	AuditPasskeyAdded       = "passkey.add"
	AuditPasskeyRemoved     = "passkey.remove"
	AuditSessionsEnded      = "session.end_others"
	AuditRecoveryInvite     = "user.recovery_invite"
	AuditUserRecovered      = "auth.recover"
	// AuditStepUpDenied is an admin operation refused for want of a valid
	// step-up grant (a stolen admin token trying it, say): aggregated per
	// admin per minute, as AuditAdminDenied.
	AuditStepUpDenied = "auth.step_up_denied"
)

// AuditActions lists every action, for filters and documentation.
var AuditActions = []string{
	AuditUserDisable, AuditUserEnable, AuditUserDelete, AuditUserRevokeSessions, AuditUserRemoveGroups,
	AuditInviteCreate, AuditInviteRevoke, AuditSettingsUpdate,
	AuditUserRegistered, AuditAdminSignIn, AuditLoginFailed, AuditCloneWarning, AuditAdminDenied,
	AuditPruned, AuditAccountDeleted, AuditPasskeyAdded, AuditPasskeyRemoved, AuditSessionsEnded, AuditRecoveryInvite, AuditUserRecovered,
	AuditStepUpDenied,
}

// Audit target types.
const (
	TargetUser     = "user"
	TargetInvite   = "invite"
	TargetSettings = "settings"
	TargetPasskey  = "passkey"
	TargetSession  = "session"
)

// AuditEntry is one line of the audit log. Detail holds action-specific
// facts (counts, changed values), never secrets such as tokens or codes.
type AuditEntry struct {
	ID         int64
	At         time.Time
	Actor      Actor
	Action     string
	TargetType string
	TargetID   string
	Detail     map[string]any
}
