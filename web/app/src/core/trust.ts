// What the app shows of device verification (docs/verification.md): the
// SDK reports devices no passkey of their user approved, passkeys no other
// passkey approved, and account resets by recovery. These pure functions
// turn its alarms into per-conversation warnings; the engine keeps the
// result in signals (state.ts).
import type { DeviceAlarm } from "@sovereign-im/client"

/** The alarms the app keeps: by conversation (base64url group id), and account resets by user id. */
export interface TrustState {
  /** Devices refused in a conversation (their group): device id → the user's username. */
  unverified: Record<string, Record<string, string>>
  /** Users whose account was reset by a recovery: user id → username. */
  resets: Record<string, string>
  /** Users with a passkey no other passkey of theirs approved: user id → username. */
  unapproved: Record<string, string>
}

export const emptyTrust = (): TrustState => ({ unverified: {}, resets: {}, unapproved: {} })

/** Adds one alarm; groupId is the conversation id (base64url) the alarm names, if any. */
export function addAlarm(s: TrustState, a: Pick<DeviceAlarm, "kind" | "userId" | "username" | "deviceId">, conv?: string): TrustState {
  if (a.kind === "account_reset") return { ...s, resets: { ...s.resets, [a.userId]: a.username } }
  if (a.kind === "passkey_unapproved") return { ...s, unapproved: { ...s.unapproved, [a.userId]: a.username } }
  if (!conv || !a.deviceId) return s
  return { ...s, unverified: { ...s.unverified, [conv]: { ...s.unverified[conv], [a.deviceId]: a.username || "?" } } }
}

/** A warning a conversation shows. */
export type TrustWarning =
  | { kind: "unverified_device"; username: string; deviceId: string }
  | { kind: "account_reset"; username: string }
  | { kind: "passkey_unapproved"; username: string }

/**
 * The warnings of one conversation: its refused devices still among its
 * members, and account resets or unapproved passkeys of its members.
 */
export function warningsFor(s: TrustState, conv: string, members: { deviceId: string; userId: string; username: string }[]): TrustWarning[] {
  const out: TrustWarning[] = []
  const here = new Set(members.map((m) => m.deviceId))
  for (const [deviceId, username] of Object.entries(s.unverified[conv] ?? {})) {
    if (here.has(deviceId) || members.length === 0) out.push({ kind: "unverified_device", username, deviceId })
  }
  const users = new Map(members.map((m) => [m.userId, m.username]))
  for (const [userId, username] of Object.entries(s.resets)) if (users.has(userId)) out.push({ kind: "account_reset", username })
  for (const [userId, username] of Object.entries(s.unapproved)) if (users.has(userId)) out.push({ kind: "passkey_unapproved", username })
  return out
}
