// DeviceVerifier: decides whether a device the server says belongs to a
// user was approved by a passkey of that user (docs/verification.md).
//
// Trust in a user's passkeys: the set served at first contact is pinned
// (persisted through ClientStore, so it survives a restart). Later, a
// passkey not pinned is trusted only if it carries a valid approval by a
// trusted passkey of the same user (an assertion over the approval
// challenge of its exact credential id and public key). A new unapproved
// passkey marked `recovered` is an account reset (an admin's recovery
// invite): reported as account_reset, then the user is pinned afresh. Any
// other new unapproved passkey is reported (passkey_unapproved) and trusts
// nothing.
//
// A device is verified when its binding is an assertion by a trusted
// passkey over the binding challenge of (nonce, its MLS leaf signature key,
// its device id).
import { equal, fromBase64, toBase64url, toHex } from "./bytes.js"
import { AttestationError, approvalChallenge, bindingChallenge, verifyAssertion, type StoredAssertion } from "./attest.js"
import type { ClientStore, PinRecord } from "./storage.js"

/** An assertion as served (bytes base64 or base64url). */
export interface ServedAssertion {
  nonce: string
  authenticator_data: string
  client_data_json: string
  signature: string
}
/** A device's binding as served with it. */
export interface ServedBinding extends ServedAssertion {
  credential_id: string
}
/** A passkey's approval by another passkey of the same user. */
export interface ServedApproval extends ServedAssertion {
  by_credential_id: string
}
/** A passkey as the directory serves it. */
export interface ServedPasskey {
  credential_id: string
  public_key: string
  created_at?: string
  recovered?: boolean
  approval?: ServedApproval | null
  deleted_at?: string | null
}
/** A device as the directory or a member list serves it. */
export interface ServedDevice {
  id: string
  name?: string
  signature_key?: string | null
  binding?: ServedBinding | null
}
/** A user as the directory serves it (the fields the verifier reads). */
export interface ServedUser {
  id: string
  username: string
  display_name?: string
  passkeys?: ServedPasskey[] | null
  devices?: ServedDevice[] | null
}

/** What is reported. */
export type DeviceAlarmKind = "device_unverified" | "passkey_unapproved" | "account_reset"

/** One report of the verifier (client.onDeviceUnverified, client.deviceAlarms). */
export interface DeviceAlarm {
  kind: DeviceAlarmKind
  userId: string
  username: string
  /** The device concerned (device_unverified). */
  deviceId?: string
  /** The passkey concerned (passkey_unapproved, account_reset: the recovery passkey). base64url. */
  credentialId?: string
  /** The group where the device was met, if any. */
  groupId?: Uint8Array
  /** Where it was met: key_package, welcome, commit, sign_in, check. */
  where?: string
  /** Machine-readable reason (unbound, key_mismatch, untrusted_passkey, wrong_challenge, bad_signature, …). */
  reason: string
  detail: string
  at: number
}

/** The outcome of one device check. */
export type DeviceCheck =
  | { ok: true; credentialId: string }
  | { ok: false; reason: string; detail: string }

export interface DeviceVerifierOptions {
  /** The relying party id the passkeys belong to (the server's domain), or how to learn it. */
  rpId: string | (() => Promise<string>)
  /** Origins accepted in clientDataJSON (default: the origins a browser allows for the rp id). */
  origins?: string[]
  /** Told about every alarm, once per (kind, user, device or passkey, group). */
  report?: (a: DeviceAlarm) => void
}

interface Trusted {
  /** base64url credential id → COSE public key. */
  keys: Map<string, Uint8Array>
}

function b(s: string | null | undefined, what: string): Uint8Array {
  if (typeof s !== "string") throw new AttestationError("malformed", `${what} is missing`)
  try {
    return fromBase64(s)
  } catch {
    throw new AttestationError("malformed", `${what} is not base64`)
  }
}

function assertionOf(a: ServedAssertion): StoredAssertion & { nonce: Uint8Array } {
  return {
    nonce: b(a.nonce, "nonce"),
    authenticatorData: b(a.authenticator_data, "authenticator_data"),
    clientDataJSON: b(a.client_data_json, "client_data_json"),
    signature: b(a.signature, "signature"),
  }
}

/** Normalises a served credential id to unpadded base64url. */
function credKey(s: string): string {
  return toBase64url(b(s, "credential_id"))
}

export class DeviceVerifier {
  /** Every alarm raised since the verifier was made. */
  readonly alarms: DeviceAlarm[] = []
  private readonly seen = new Set<string>()
  private readonly verified = new Set<string>()
  /** Pins read or written, by user id (the store is the truth; this saves a read and a decode per check). */
  private readonly pins = new Map<string, PinRecord>()
  /** Serialises pin updates per user. */
  private readonly userLocks = new Map<string, Promise<unknown>>()

  constructor(
    private readonly store: ClientStore,
    private readonly o: DeviceVerifierOptions,
  ) {}

  /** Raises an alarm unless the same one was raised before. */
  raise(a: Omit<DeviceAlarm, "at">): void {
    const key = [a.kind, a.userId, a.deviceId ?? "", a.credentialId ?? "", a.groupId ? toHex(a.groupId) : ""].join("/")
    if (this.seen.has(key)) return
    this.seen.add(key)
    const full: DeviceAlarm = { ...a, at: Date.now() }
    this.alarms.push(full)
    this.o.report?.(full)
  }

  private async verifyApproval(user: ServedUser, p: ServedPasskey, by: Uint8Array): Promise<void> {
    const a = assertionOf(p.approval!)
    const challenge = approvalChallenge(a.nonce, b(p.credential_id, "credential_id"), b(p.public_key, "public_key"))
    await verifyAssertion(by, a, { challenge, rpId: await this.rpId(), origins: this.o.origins })
  }

  /**
   * Grows a trusted set by the served passkeys approved (transitively) by a
   * trusted one; returns the passkeys left over, unapproved or badly approved.
   */
  private async extend(user: ServedUser, trusted: Map<string, Uint8Array>, candidates: ServedPasskey[]): Promise<{ p: ServedPasskey; why: string }[]> {
    let left = candidates
    const why = new Map<ServedPasskey, string>()
    for (;;) {
      const next: ServedPasskey[] = []
      for (const p of left) {
        const by = p.approval ? trusted.get(credKey(p.approval.by_credential_id)) : undefined
        if (!p.approval || !by || credKey(p.approval.by_credential_id) === credKey(p.credential_id)) {
          why.set(p, p.approval ? "approver_untrusted" : "unapproved")
          next.push(p)
          continue
        }
        try {
          await this.verifyApproval(user, p, by)
          trusted.set(credKey(p.credential_id), b(p.public_key, "public_key"))
        } catch (e) {
          why.set(p, e instanceof AttestationError ? e.code : "malformed")
          next.push(p)
        }
      }
      if (next.length === left.length) return next.map((p) => ({ p, why: why.get(p) ?? "unapproved" }))
      left = next
    }
  }

  private rp?: Promise<string>
  /** The rp id, learned once when given as a function. */
  rpId(): Promise<string> {
    const r = this.o.rpId
    if (typeof r === "string") return Promise.resolve(r)
    this.rp ??= r().catch((e: unknown) => {
      this.rp = undefined
      throw e
    })
    return this.rp
  }

  private withUserLock<T>(userId: string, f: () => Promise<T>): Promise<T> {
    const prev = this.userLocks.get(userId) ?? Promise.resolve()
    const run = prev.catch(() => undefined).then(f)
    this.userLocks.set(userId, run)
    return run
  }

  /**
   * The passkeys of a user this device trusts, pinning on first contact and
   * handling new passkeys (approval, account reset) as described above.
   */
  trustedPasskeys(user: ServedUser): Promise<Trusted> {
    return this.withUserLock(user.id, () => this.trustedPasskeysLocked(user))
  }

  private async trustedPasskeysLocked(user: ServedUser): Promise<Trusted> {
    const served = (user.passkeys ?? []).filter((p) => {
      try {
        credKey(p.credential_id)
        b(p.public_key, "public_key")
        return true
      } catch {
        return false
      }
    })
    const pins = this.pins.get(user.id) ?? (await this.store.getPins(user.id))
    if (pins) this.pins.set(user.id, pins)
    if (!pins) {
      // First contact: trust on first use. Unapproved passkeys are the roots
      // (the registration's, a recovery's, passkeys added before approvals
      // existed); approved ones must chain from them.
      const trusted = new Map<string, Uint8Array>()
      for (const p of served) if (!p.approval) trusted.set(credKey(p.credential_id), b(p.public_key, "public_key"))
      const rest = await this.extend(user, trusted, served.filter((p) => p.approval))
      for (const r of rest) this.reportPasskey(user, r.p, r.why)
      await this.savePins(user.id, trusted, 0)
      return { keys: trusted }
    }
    const trusted = new Map<string, Uint8Array>()
    for (const p of pins.passkeys) trusted.set(toBase64url(p.credentialId), p.publicKey)
    const fresh: ServedPasskey[] = []
    for (const p of served) {
      const pinned = trusted.get(credKey(p.credential_id))
      if (!pinned) fresh.push(p)
      else if (!equal(pinned, b(p.public_key, "public_key"))) {
        // The server serves another key under a pinned credential id: keep the pinned one.
        this.reportPasskey(user, p, "key_changed")
      }
    }
    if (fresh.length === 0) return { keys: trusted }
    const before = trusted.size
    let rest = await this.extend(user, trusted, fresh)
    const recovered = rest.filter((r) => !r.p.approval && r.p.recovered === true)
    if (recovered.length > 0) {
      // An account reset by recovery: the old passkeys were deleted with it.
      // Pin the recovered passkeys and what they approved, and say so.
      const reset = new Map<string, Uint8Array>()
      for (const r of recovered) reset.set(credKey(r.p.credential_id), b(r.p.public_key, "public_key"))
      rest = await this.extend(user, reset, served.filter((p) => !reset.has(credKey(p.credential_id))))
      for (const r of recovered) {
        this.raise({
          kind: "account_reset",
          userId: user.id,
          username: user.username,
          credentialId: credKey(r.p.credential_id),
          reason: "recovered",
          detail: `${user.username}'s account was recovered by an admin: compare safety codes`,
        })
      }
      // Old passkeys still served and not approved from the new root stay trusted only if pinned before and still served.
      for (const r of [...rest]) {
        const k = credKey(r.p.credential_id)
        const old = trusted.get(k)
        if (old && equal(old, b(r.p.public_key, "public_key")) && !r.p.deleted_at) {
          reset.set(k, old)
          rest = rest.filter((x) => x !== r)
        }
      }
      for (const r of rest) if (!r.p.deleted_at) this.reportPasskey(user, r.p, r.why)
      await this.savePins(user.id, reset, pins.resets + 1)
      return { keys: reset }
    }
    for (const r of rest) this.reportPasskey(user, r.p, r.why)
    if (trusted.size !== before) await this.savePins(user.id, trusted, pins.resets)
    return { keys: trusted }
  }

  private reportPasskey(user: ServedUser, p: ServedPasskey, why: string): void {
    this.raise({
      kind: "passkey_unapproved",
      userId: user.id,
      username: user.username,
      credentialId: credKey(p.credential_id),
      reason: why,
      detail: `a passkey of ${user.username} was not approved by another of their passkeys (${why})`,
    })
  }

  private async savePins(userId: string, trusted: Map<string, Uint8Array>, resets: number): Promise<void> {
    const r: PinRecord = {
      userId,
      passkeys: [...trusted.entries()].map(([id, publicKey]) => ({ credentialId: fromBase64(id), publicKey })),
      resets,
    }
    await this.store.putPins(r)
    this.pins.set(userId, r)
  }

  /**
   * Checks that the device deviceId, with MLS leaf signature key leafKey,
   * was approved by a trusted passkey of user. Does not report: see check().
   */
  async verifyDevice(user: ServedUser, deviceId: string, leafKey: Uint8Array): Promise<DeviceCheck> {
    const d = (user.devices ?? []).find((x) => x.id.toLowerCase() === deviceId.toLowerCase())
    if (!d) return { ok: false, reason: "unknown_device", detail: `the server does not list device ${deviceId} for ${user.username}` }
    if (!d.binding) return { ok: false, reason: "unbound", detail: `device ${deviceId} of ${user.username} has no passkey binding` }
    try {
      if (d.signature_key && !equal(b(d.signature_key, "signature_key"), leafKey)) {
        return { ok: false, reason: "key_mismatch", detail: `device ${deviceId}'s MLS key is not the key its passkey approved` }
      }
      const a = assertionOf(d.binding)
      const cred = credKey(d.binding.credential_id)
      const cacheKey = [user.id, deviceId, toHex(leafKey), cred, d.binding.nonce, d.binding.authenticator_data, d.binding.signature, d.binding.client_data_json].join("/")
      const trusted = await this.trustedPasskeys(user)
      const pk = trusted.keys.get(cred)
      if (!pk) return { ok: false, reason: "untrusted_passkey", detail: `device ${deviceId} was bound by a passkey ${user.username} never approved` }
      if (this.verified.has(cacheKey + "/" + toHex(pk))) return { ok: true, credentialId: cred }
      await verifyAssertion(pk, a, { challenge: bindingChallenge(a.nonce, leafKey, deviceId), rpId: await this.rpId(), origins: this.o.origins })
      if (this.verified.size > 10_000) this.verified.clear()
      this.verified.add(cacheKey + "/" + toHex(pk))
      return { ok: true, credentialId: cred }
    } catch (e) {
      if (e instanceof AttestationError) return { ok: false, reason: e.code, detail: e.message }
      throw e
    }
  }

  /** verifyDevice, and a device_unverified alarm when it fails. */
  async check(user: ServedUser, deviceId: string, leafKey: Uint8Array, ctx: { groupId?: Uint8Array; where?: string } = {}): Promise<DeviceCheck> {
    const r = await this.verifyDevice(user, deviceId, leafKey)
    if (!r.ok) {
      this.raise({
        kind: "device_unverified",
        userId: user.id,
        username: user.username,
        deviceId,
        groupId: ctx.groupId,
        where: ctx.where,
        reason: r.reason,
        detail: r.detail,
      })
    }
    return r
  }
}
