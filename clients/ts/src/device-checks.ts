// Where SovereignClient checks devices (docs/verification.md): the key
// packages it claims before adding a user, every leaf of a Welcome's tree,
// every leaf a commit adds (external joins too), and its own device at
// sign-in. Also the checks of the server's ceremony answers: the binding
// and approval challenges are recomputed before the authenticator is asked.
import { equal, fromBase64, fromBase64url } from "./bytes.js"
import { AttestationError, approvalChallenge, bindingChallenge } from "./attest.js"
import { DeviceVerifier, type DeviceCheck, type ServedUser } from "./attest-verifier.js"
import type { GroupMember } from "./mls.js"
import type { ClientStore } from "./storage.js"
import type { RegistrationResponseJSON } from "./webauthn.js"
import { decodeCbor, type CborValue } from "./cbor-decode.js"
import { parseAuthenticatorData } from "./webauthn.js"

/** Raised by the SDK for a refusal of its own (not the server's); `code` is machine-readable. */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = "ClientError"
  }
}

/** What the server answers with a bound ceremony. */
export interface DeviceBindingAnswer {
  device_id: string
  nonce: string
}

/**
 * Recomputes the binding challenge from the server's nonce and device id
 * and this device's own key; refuses (binding_mismatch) when it is not the
 * challenge the server asks the authenticator to sign.
 */
export function checkBindingChallenge(binding: DeviceBindingAnswer | undefined | null, challenge: string, signatureKey: Uint8Array, deviceId?: string): string {
  if (!binding) throw new AttestationError("binding_mismatch", "the server did not bind this sign-in to the device's key")
  if (deviceId && binding.device_id.toLowerCase() !== deviceId.toLowerCase()) {
    throw new AttestationError("binding_mismatch", `the server binds device ${binding.device_id}, not this device ${deviceId}`)
  }
  let want: Uint8Array
  try {
    want = bindingChallenge(fromBase64(binding.nonce), signatureKey, binding.device_id)
  } catch (e) {
    throw new AttestationError("binding_mismatch", `the server's binding is malformed: ${(e as Error).message}`)
  }
  if (!equal(want, fromBase64url(challenge))) {
    throw new AttestationError("binding_mismatch", "the WebAuthn challenge does not commit to this device's key")
  }
  return binding.device_id
}

/** The credential id and COSE public key of a creation (registration) result. */
export function createdKey(r: RegistrationResponseJSON): { credentialId: Uint8Array; publicKey: Uint8Array } {
  const att = decodeCbor(fromBase64url(r.response.attestationObject))
  if (!(att instanceof Map)) throw new AttestationError("malformed", "attestationObject is not a map")
  const ad = parseAuthenticatorData((att as Map<CborValue, CborValue>).get("authData") as Uint8Array)
  if (!ad.credentialId || !ad.credentialPublicKey) throw new AttestationError("malformed", "the creation has no attested credential")
  return { credentialId: ad.credentialId, publicKey: ad.credentialPublicKey }
}

/** What the server answers at add-passkey/approve/begin. */
export interface PasskeyApprovalAnswer {
  nonce: string
  credential_id: string
  public_key: string
}

/**
 * Recomputes the approval challenge for the passkey this device just
 * created (not the one the server names) and refuses (approval_mismatch)
 * when the server asks to approve anything else.
 */
export function checkApprovalChallenge(a: PasskeyApprovalAnswer | undefined | null, challenge: string, created: RegistrationResponseJSON): void {
  if (!a) throw new AttestationError("approval_mismatch", "the server sent no approval to sign")
  const mine = createdKey(created)
  if (!equal(fromBase64(a.credential_id), mine.credentialId) || !equal(fromBase64(a.public_key), mine.publicKey)) {
    throw new AttestationError("approval_mismatch", "the server asks to approve another passkey than the one just created")
  }
  const want = approvalChallenge(fromBase64(a.nonce), mine.credentialId, mine.publicKey)
  if (!equal(want, fromBase64url(challenge))) throw new AttestationError("approval_mismatch", "the WebAuthn challenge does not approve the new passkey")
}

/** The device→user map of a group as the server lists it. */
export type GroupRoster = { device_id: string; user_id: string }[]

/** The client side of the checks: looks users up (briefly cached) and records failing devices per group. */
export class DeviceChecks {
  private readonly users = new Map<string, { at: number; u: Promise<ServedUser> }>()

  constructor(
    readonly verifier: DeviceVerifier,
    private readonly store: ClientStore,
    private readonly lookup: (user: string) => Promise<ServedUser>,
    private readonly roster: (groupId: Uint8Array) => Promise<GroupRoster>,
    private readonly ttlMs = 5000,
  ) {}

  /** A user's directory entry (by id or username), cached for a few seconds. */
  user(ref: string): Promise<ServedUser> {
    const now = Date.now()
    const hit = this.users.get(ref)
    if (hit && now - hit.at < this.ttlMs) return hit.u
    const u = this.lookup(ref)
    u.catch(() => this.users.delete(ref))
    this.users.set(ref, { at: now, u })
    return u
  }

  /**
   * Checks a device of a user; a failure is checked once more against a
   * fresh directory entry (the cached one may predate the device) before it
   * is reported (when report is set).
   */
  async device(userRef: string, deviceId: string, key: Uint8Array, ctx: { groupId?: Uint8Array; where?: string }, report = true): Promise<DeviceCheck> {
    const r = await this.verifier.verifyDevice(await this.user(userRef), deviceId, key)
    if (r.ok) return r
    this.users.delete(userRef)
    const user = await this.user(userRef)
    return report ? this.verifier.check(user, deviceId, key, ctx) : this.verifier.verifyDevice(user, deviceId, key)
  }

  /** Forgets cached directory entries (after a change this client made). */
  forget(): void {
    this.users.clear()
  }

  /**
   * The claimed key packages of a user whose device verifies; the others
   * are reported and left out (never added).
   */
  async keyPackages(userRef: string, kps: { bytes: Uint8Array; deviceId: string; signatureKey: Uint8Array }[], groupId?: Uint8Array): Promise<Uint8Array[]> {
    if (kps.length === 0) return []
    const out: Uint8Array[] = []
    for (const k of kps) {
      const r = await this.device(userRef, k.deviceId, k.signatureKey, { groupId, where: "key_package" })
      if (r.ok) out.push(k.bytes)
    }
    return out
  }

  /**
   * Checks leaves of a group (all of a Welcome's, or those a commit added),
   * each against the user the server lists it under. Failing devices are
   * reported and remembered for the group; returns them.
   */
  async leaves(groupId: Uint8Array, leaves: GroupMember[], where: string, self?: string): Promise<string[]> {
    const todo = leaves.filter((l) => l.deviceId !== self)
    if (todo.length === 0) return []
    let roster: GroupRoster = []
    try {
      roster = await this.roster(groupId)
    } catch {
      roster = []
    }
    const owner = new Map(roster.map((m) => [m.device_id.toLowerCase(), m.user_id]))
    const failing: string[] = []
    for (const l of todo) {
      const userId = owner.get(l.deviceId.toLowerCase())
      if (!userId) {
        failing.push(l.deviceId)
        this.verifier.raise({
          kind: "device_unverified",
          userId: "",
          username: "",
          deviceId: l.deviceId,
          groupId,
          where,
          reason: "unknown_device",
          detail: `the server names no user for device ${l.deviceId}`,
        })
        continue
      }
      let r: DeviceCheck
      try {
        r = await this.device(userId, l.deviceId, l.signatureKey, { groupId, where })
      } catch (e) {
        failing.push(l.deviceId)
        this.verifier.raise({
          kind: "device_unverified",
          userId,
          username: "",
          deviceId: l.deviceId,
          groupId,
          where,
          reason: "lookup_failed",
          detail: `the directory entry of the device's user could not be read: ${(e as Error).message}`,
        })
        continue
      }
      if (!r.ok) failing.push(l.deviceId)
    }
    if (failing.length > 0) {
      const before = await this.store.getUnverified(groupId)
      await this.store.putUnverified(groupId, [...new Set([...before, ...failing])])
    }
    return failing
  }

  /**
   * The verification state of every leaf of a group (what a member list
   * shows), without new alarms for failures already reported.
   */
  async status(groupId: Uint8Array, leaves: GroupMember[]): Promise<Map<string, DeviceCheck>> {
    const roster = await this.roster(groupId)
    const owner = new Map(roster.map((m) => [m.device_id.toLowerCase(), m.user_id]))
    const out = new Map<string, DeviceCheck>()
    for (const l of leaves) {
      const userId = owner.get(l.deviceId.toLowerCase())
      if (!userId) {
        out.set(l.deviceId, { ok: false, reason: "unknown_device", detail: `the server names no user for device ${l.deviceId}` })
        continue
      }
      try {
        out.set(l.deviceId, await this.device(userId, l.deviceId, l.signatureKey, {}, false))
      } catch (e) {
        out.set(l.deviceId, { ok: false, reason: "lookup_failed", detail: (e as Error).message })
      }
    }
    return out
  }

  /**
   * The failing devices still in a group (by our MLS state); those no
   * longer there are forgotten. Sending is refused while any is left.
   */
  async stillIn(groupId: Uint8Array, members: GroupMember[]): Promise<string[]> {
    const bad = await this.store.getUnverified(groupId)
    if (bad.length === 0) return []
    const present = new Set(members.map((m) => m.deviceId))
    let left = bad.filter((d) => present.has(d))
    if (left.length > 0) {
      // Checked again: a failure that was the network's (a lookup that did
      // not answer) clears once the device verifies; only a passkey of its
      // user can make it verify.
      try {
        const now = await this.status(groupId, members.filter((m) => left.includes(m.deviceId)))
        left = left.filter((d) => !now.get(d)?.ok)
      } catch {
        // keep them all
      }
    }
    if (left.length !== bad.length) await this.store.putUnverified(groupId, left)
    return left
  }
}
