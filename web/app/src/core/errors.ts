// Turns whatever a flow throws into one sentence a person understands
// (texts in strings.ts). Server problems are told apart by their `code`.
import { ApiError, AttestationError, ClientError } from "@sovereign-im/client"
import { t } from "../strings"

export function plainError(e: unknown): string {
  if (e instanceof ApiError) {
    switch (e.code) {
      case "invite_invalid":
      case "invite_required":
        return e.operation.startsWith("recover") ? t.errRecoveryInvalid : t.errInviteInvalid
      case "last_passkey":
        return t.errLastPasskey
      case "step_up_required":
        return t.errStepUp
      case "last_admin":
        return t.errLastAdmin
      case "user_not_found":
        return t.errUserNotFound
      case "username_taken":
        return t.errUsernameTaken
      case "verification_failed":
        return /origin|rp ?id/i.test(e.problem.detail ?? "") ? t.errOrigin(location.origin) : t.errVerification
      case "ceremony_expired":
        return t.errCeremonyExpired
      case "account_disabled":
        return t.errDisabled
      case "unknown_passkey":
        return t.errUnknownAccount
      case "invalid_username":
        return t.errUsernameInvalid
      case "device_not_found":
        return t.errOtherDevice
      case "device_revoked":
        return t.errRevokedDevice
      case "approval_required":
      case "approval_mismatch":
        return t.errApproval
    }
    if (e.status === 429) return t.errRateLimited(e.problem.retry_after ?? 10)
    if (e.status === 422 && e.operation === "registerBegin") return t.errUsernameInvalid
    return t.errGeneric(e.problem.detail ?? e.problem.title ?? String(e.status))
  }
  if (e instanceof ClientError && e.code === "unverified_device_in_group") return t.errUnverifiedDevice
  if (e instanceof AttestationError && e.code === "binding_mismatch") return t.errBindingMismatch
  if (e instanceof AttestationError && e.code === "approval_mismatch") return t.errApproval
  const err = e as { name?: string; code?: string; message?: string }
  switch (err?.code ?? err?.name) {
    case "ERROR_CEREMONY_ABORTED":
    case "NotAllowedError":
    case "AbortError":
      return t.errPasskeyCancelled
    case "ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED":
    case "InvalidStateError":
      return t.errPasskeyExists
    case "ERROR_INVALID_DOMAIN":
    case "ERROR_INVALID_RP_ID":
    case "SecurityError":
      return t.errOrigin(location.origin)
    case "ERROR_PASSKEY_NOT_SUPPORTED":
      return t.errNoPasskeys
  }
  if (e instanceof TypeError) return t.errOffline
  return t.errGeneric(err?.message ?? String(e))
}

/** True for a failure of the network (no answer at all), as opposed to an answer of the server. */
export function isNetworkError(e: unknown): boolean {
  return e instanceof TypeError || (e instanceof DOMException && e.name === "NetworkError")
}
