// SovereignClient: what a web or React Native app uses. It signs in with
// passkeys, keeps this device's key packages stocked, builds and joins MLS
// groups, sends and receives end-to-end encrypted messages, and follows the
// device's feed (SSE, or long-poll when streaming is not possible),
// persisting everything through a ClientStore.
//
// Concurrency rule: every change to MLS state happens under one lock, and a
// commit's new state is applied only after the server accepted it. A commit
// that loses the race for its epoch (409) is dropped; the client processes
// the winning commit from its feed and builds its commit again.
import createClient, { type Client } from "openapi-fetch"
import type { components, paths } from "./schema.js"
import { fromBase64, fromHex, toBase64, toBase64url, utf8 } from "./bytes.js"
import { ApiError, type Problem } from "./errors.js"
import { Feed, pollOnce, type FeedEvent, type Transport } from "./feed.js"
import { HistoryVerifier, decodeHead, encodeHead, isChained, type HistoryMismatch } from "./chain.js"
import type { SafetyCode } from "./safety.js"
import { MlsClient, MlsError, parseKeyPackage, type MlsClientOptions, type PendingCommit, type Received, DEFAULT_SUITE } from "./mls.js"
import { FeedClosedError } from "./feed.js"
import { ClientStore, type KeyValueStore, type SessionRecord } from "./storage.js"
import type { Authenticator, CreationOptionsJSON, RegistrationResponseJSON, RequestOptionsJSON } from "./webauthn.js"
import { DeviceVerifier, type DeviceAlarm, type DeviceCheck, type ServedUser } from "./attest-verifier.js"
import { ClientError, DeviceChecks, checkApprovalChallenge, checkBindingChallenge } from "./device-checks.js"
import { ciphersuites } from "ts-mls"
import { downloadAttachment, downloadAttachmentBlob, downloadAttachmentChunks, uploadAttachment, type AttachmentPointer, type AttachmentSource, type AttachmentTransport, type DownloadOptions, type UploadOptions } from "./attachments.js"

export type Schemas = components["schemas"]

export interface SovereignClientOptions {
  /** Server base URL, e.g. https://chat.example.org */
  baseUrl: string
  /** Where this device keeps its session, MLS state and cursor. */
  storage: ClientStore | KeyValueStore
  /** Performs passkey ceremonies (BrowserAuthenticator in apps). */
  authenticator?: Authenticator
  fetch?: typeof fetch
  mls?: MlsClientOptions
  /** Normal key packages to keep on the server (default 10). */
  keyPackageTarget?: number
  /** Attempts for a commit or send that keeps losing races (default 5). */
  maxAttempts?: number
  /**
   * Commit the MLS removal of a device the server cut off (a `remove_device`
   * notice: revoked device, disabled or deleted user, removed by an admin).
   * Only members can do it, and until someone does the group's keys still
   * include the device's leaf. Default true.
   */
  autoRemove?: boolean
  /**
   * Longest random wait before that commit, in ms (default 2000), so that
   * usually one member commits and the others find nothing left to do.
   */
  autoRemoveMaxDelayMs?: number
  /**
   * When the feed answers 410 (this device was away longer than the
   * server's retention), rejoin every group the server still lists by
   * external commit and resume the feed. Default true.
   */
  autoRejoin?: boolean
  /** Told after an automatic rejoin: the groups rejoined and those that failed. */
  onResync?: (r: ResyncResult) => void
  /**
   * The WebAuthn relying party id of the server's passkeys, for checking
   * device bindings (docs/verification.md). Default: the one GET /v1/me
   * names (rp_id), else the host of baseUrl.
   */
  rpId?: string
  /** Origins accepted in the clientDataJSON of bindings and approvals. Default: those a browser allows for the rp id (https on it or a subdomain; http on localhost). */
  origins?: string[]
}

/** What an automatic rejoin after 410 did. */
export interface ResyncResult {
  resumeAfter: number
  rejoined: Uint8Array[]
  failed: { groupId: Uint8Array; error: Error }[]
}

/** A user as the directory shows them. */
export type DirectoryUser = Schemas["DirectoryUserBody"]

/** A sign-in's coarse location: ISO country code and, with a city database, the city's English name. */
export type SignInLocation = Schemas["Location"]

/** A new_device notice: another device of this user signed in for the first time. */
export interface NewDeviceNotice {
  kind: "new_device"
  deviceId: string
  deviceName: string
  createdAt: string
  /** Where the sign-in came from, coarsely; only when the server has a GeoIP database (--geoip-db, off by default). */
  location?: SignInLocation
}

/** What the app is told about each processed feed event. */
export interface ClientEvent {
  seq: number
  eventId: string
  kind: string
  groupId?: Uint8Array
  result: Received | { kind: "notice"; notice: Record<string, unknown> } | NewDeviceNotice
  /** The feed event as received (ciphertext payload). */
  event: FeedEvent
}

export type Listener = (e: ClientEvent) => void | Promise<void>

/** Told about each history_mismatch found (docs/verification.md). */
export type HistoryListener = (m: HistoryMismatch) => void | Promise<void>

/** Told about each device that failed verification, unapproved passkey and account reset (docs/verification.md). */
export type DeviceAlarmListener = (a: DeviceAlarm) => void | Promise<void>

/** A simple FIFO async mutex. */
class Mutex {
  private tail: Promise<void> = Promise.resolve()
  async run<T>(f: () => Promise<T>): Promise<T> {
    const prev = this.tail
    let release!: () => void
    this.tail = new Promise<void>((r) => (release = r))
    await prev
    try {
      return await f()
    } finally {
      release()
    }
  }
}

function problemOf(error: unknown, response: Response, operation: string): ApiError {
  const p = (typeof error === "object" && error !== null ? error : { detail: String(error) }) as Problem
  if (p.retry_after === undefined) {
    const ra = Number(response.headers.get("Retry-After"))
    if (Number.isFinite(ra) && ra > 0) p.retry_after = ra
  }
  return new ApiError(response.status, p, operation)
}

/** Unwraps an openapi-fetch result: data on 2xx, ApiError otherwise. */
function ok<T>(r: { data?: T; error?: unknown; response: Response }, operation: string): T {
  if (r.response.ok && r.data !== undefined) return r.data
  if (r.response.ok) return undefined as T
  throw problemOf(r.error, r.response, operation)
}

function suiteId(name: string): number {
  return (ciphersuites as Record<string, number>)[name]!
}

export class SovereignClient {
  readonly api: Client<paths>
  readonly store: ClientStore
  private session?: SessionRecord
  private mlsClient?: MlsClient
  private readonly lock = new Mutex()
  private readonly listeners = new Set<Listener>()
  private readonly historyListeners = new Set<HistoryListener>()
  /** The group chains this client follows (docs/verification.md). */
  readonly history = new HistoryVerifier()
  /** Every history_mismatch found since the client was opened. */
  readonly historyMismatches: HistoryMismatch[] = []
  private readonly deviceListeners = new Set<DeviceAlarmListener>()
  /** Checks that every device met was approved by a passkey of its user (docs/verification.md). */
  readonly devices: DeviceVerifier
  private readonly checks: DeviceChecks
  private cursor = 0
  private ackedSeq = 0
  private ackTimer?: ReturnType<typeof setTimeout>
  private feed?: Feed
  private replenishing?: Promise<void>
  /** Pending automatic removals by group and device, with their timers. */
  private readonly removals = new Map<string, PendingRemoval>()

  private constructor(private readonly o: SovereignClientOptions) {
    this.store = o.storage instanceof ClientStore ? o.storage : new ClientStore(o.storage)
    this.api = createClient<paths>({ baseUrl: o.baseUrl.replace(/\/$/, ""), fetch: o.fetch })
    const base = new URL(o.baseUrl)
    this.devices = new DeviceVerifier(this.store, {
      // The server names its rp id (GET /v1/me); a wrong one only makes
      // checks fail: pinned passkeys sign for their own rp id only.
      rpId: o.rpId ?? (async () => {
        const r = await this.api.GET("/v1/me", {})
        return r.data?.rp_id || base.hostname
      }),
      origins: o.origins,
      report: (a) => {
        for (const l of this.deviceListeners) void Promise.resolve(l(a)).catch(() => undefined)
      },
    })
    this.checks = new DeviceChecks(
      this.devices,
      this.store,
      async (u) => (await this.lookupUser(u)) as unknown as ServedUser,
      async (gid) => (await this.group(gid)).members ?? [],
    )
    this.api.use({
      onRequest: ({ request, schemaPath }) => {
        // Ceremonies are public: no token (a login refreshes an expired one).
        const ceremony = /^\/v1\/auth\/(register|login)\//.test(schemaPath)
        if (this.session?.token && !ceremony && !request.headers.has("Authorization")) {
          request.headers.set("Authorization", `Bearer ${this.session.token}`)
        }
        return request
      },
    })
  }

  /** Opens a client; a session stored earlier is picked up (no ceremony needed). */
  static async open(o: SovereignClientOptions): Promise<SovereignClient> {
    const c = new SovereignClient(o)
    c.session = await c.store.getSession()
    c.cursor = await c.store.getCursor()
    c.ackedSeq = c.cursor
    // The verified chain heads: after a restart the first event of each group is checked against them, not trusted.
    for (const hex of await c.store.listChains()) {
      const gid = fromHex(hex)
      const snap = await c.store.getChain(gid)
      if (snap) c.history.restore(gid, snap)
    }
    if (c.session) c.mlsClient = await MlsClient.open(c.session.deviceId, c.store, o.mls)
    return c
  }

  get signedIn(): boolean {
    return this.session !== undefined
  }
  get deviceId(): string {
    return this.need().deviceId
  }
  get userId(): string {
    return this.need().userId
  }
  get username(): string {
    return this.need().username
  }
  /** The session token (for transports the SDK does not wrap, e.g. WebSocket). */
  get token(): string {
    return this.need().token
  }
  get mls(): MlsClient {
    if (!this.mlsClient) throw new Error("not signed in")
    return this.mlsClient
  }
  /** The highest feed seq this device has processed. */
  get position(): number {
    return this.cursor
  }

  private need(): SessionRecord {
    if (!this.session) throw new Error("not signed in")
    return this.session
  }

  private authenticator(): Authenticator {
    if (!this.o.authenticator) throw new Error("no authenticator configured")
    return this.o.authenticator
  }

  private async startSession(g: Schemas["SessionGrant"]): Promise<SessionRecord> {
    const s: SessionRecord = { token: g.token, userId: g.user_id, deviceId: g.device_id, username: g.user.username }
    const previous = this.session
    if (previous && previous.deviceId !== s.deviceId) {
      // A different device: this storage's MLS state belonged to the old one.
      throw new Error("this storage belongs to another device; use a fresh storage for a new device")
    }
    await this.store.putSession(s)
    this.session = s
    this.mlsClient ??= await MlsClient.open(s.deviceId, this.store, this.o.mls)
    return s
  }

  // --- passkeys ---------------------------------------------------------------

  /**
   * Registers an account with an invite: a passkey ceremony, then a session
   * for a new device named deviceName.
   */
  async register(r: { inviteCode?: string; username: string; displayName: string; deviceName: string; passkeyName?: string }): Promise<SessionRecord> {
    if (this.session) throw new Error("this storage already holds a session")
    const begin = ok(
      await this.api.POST("/v1/auth/register/begin", {
        body: { invite_code: r.inviteCode, username: r.username, display_name: r.displayName },
      }),
      "registerBegin",
    )
    const credential = await this.authenticator().create(begin.options as unknown as CreationOptionsJSON)
    const grant = ok(
      await this.api.POST("/v1/auth/register/finish", {
        body: {
          ceremony_id: begin.ceremony_id,
          credential: credential as unknown as Schemas["AttestationCredential"],
          device_name: r.deviceName,
          passkey_name: r.passkeyName,
        },
      }),
      "registerFinish",
    )
    const session = await this.startSession(grant)
    // A creation ceremony signs nothing the server chose: bind the device with an assertion now.
    await this.bindDevice()
    return session
  }

  /**
   * Signs in with a passkey. With a stored session (an expired one, say) the
   * same device signs in again and keeps its key packages and groups;
   * otherwise a new device named deviceName is created. Without a username
   * the login is discoverable (the authenticator offers its passkeys).
   */
  async login(l: { username?: string; deviceName?: string } = {}): Promise<SessionRecord> {
    // The device's MLS signature key exists before the sign-in, so that the
    // passkey assertion approves it (docs/verification.md).
    const signatureKey = await MlsClient.deviceSignatureKey(this.store, this.o.mls?.suite)
    const begin = ok(
      await this.api.POST("/v1/auth/login/begin", {
        body: {
          username: l.username,
          device_signature_key: toBase64url(signatureKey),
          device_id: this.session?.deviceId,
        },
      }),
      "loginBegin",
    )
    const options = begin.options as unknown as RequestOptionsJSON
    checkBindingChallenge(begin.device_binding, options.challenge, signatureKey, this.session?.deviceId)
    const credential = await this.authenticator().get(options)
    const device = this.session ? { device_id: this.session.deviceId } : { device_name: l.deviceName ?? "Sovereign client" }
    const grant = ok(
      await this.api.POST("/v1/auth/login/finish", {
        body: {
          ceremony_id: begin.ceremony_id,
          credential: credential as unknown as Schemas["AssertionCredential"],
          ...device,
        },
      }),
      "loginFinish",
    )
    const session = await this.startSession(grant)
    await this.verifyOwnDevice()
    return session
  }

  /**
   * Binds this device's MLS signature key to a passkey of the account (one
   * passkey prompt): after registration and recovery (the SDK calls it), for
   * a device signed in before bindings existed, or after a key change. See
   * deviceBindingNeeded().
   */
  async bindDevice(): Promise<Schemas["DeviceInfo"]> {
    const signatureKey = this.mls.signatureKey
    const begin = ok(
      await this.api.POST("/v1/me/devices/current/binding/begin", { body: { signature_key: toBase64url(signatureKey) } }),
      "bindDeviceBegin",
    )
    const options = begin.options as unknown as RequestOptionsJSON
    checkBindingChallenge(begin.device_binding, options.challenge, signatureKey, this.deviceId)
    const credential = await this.authenticator().get(options)
    const info = ok(
      await this.api.POST("/v1/me/devices/current/binding/finish", {
        body: { ceremony_id: begin.ceremony_id, credential: credential as unknown as Schemas["AssertionCredential"] },
      }),
      "bindDeviceFinish",
    )
    this.checks.forget()
    return info
  }

  /**
   * Whether this device still needs bindDevice(): the server lists it
   * without a binding, or bound to another key than its own (a device signed
   * in before bindings existed). The app asks for the passkey once.
   */
  async deviceBindingNeeded(): Promise<boolean> {
    const list = ok(await this.api.GET("/v1/me/devices", {}), "listMyDevices")
    const me = (list.devices ?? []).find((d) => d.id === this.deviceId)
    if (!me) return false
    return !me.binding || !me.signature_key || toBase64url(fromBase64(me.signature_key)) !== toBase64url(this.mls.signatureKey)
  }

  /** Checks this device's own binding as a peer would (reports when it fails); true when it verifies. */
  async verifyOwnDevice(): Promise<boolean> {
    this.checks.forget()
    const me = await this.checks.user(this.userId)
    const r = await this.devices.check(me, this.deviceId, this.mls.signatureKey, { where: "sign_in" })
    return r.ok
  }

  /**
   * Proves, with a fresh assertion by one of the account's passkeys, that the
   * owner is present, for one account change (the server refuses adding and
   * deleting passkeys and ending the other sessions on a token alone).
   * Returns the single-use grant (good for 60 s) for that change's
   * Sovereign-Step-Up header. The add/delete/end helpers below call it.
   */
  async stepUp(operation: "add_passkey" | "delete_passkey" | "end_other_sessions" | "delete_account", passkeyId?: string): Promise<string> {
    const begin = ok(
      await this.api.POST("/v1/auth/step-up/begin", { body: { operation, passkey_id: passkeyId } }),
      "stepUpBegin",
    )
    const credential = await this.authenticator().get(begin.options as unknown as RequestOptionsJSON)
    const g = ok(
      await this.api.POST("/v1/auth/step-up/finish", {
        body: { ceremony_id: begin.ceremony_id, credential: credential as unknown as Schemas["AssertionCredential"] },
      }),
      "stepUpFinish",
    )
    return g.step_up
  }

  /** The account's passkeys (no key material). */
  async passkeys(): Promise<Schemas["PasskeyInfo"][]> {
    return ok(await this.api.GET("/v1/me/passkeys", {}), "listMyPasskeys").passkeys ?? []
  }

  /**
   * Adds a passkey: a step-up with an existing passkey (the authenticator
   * asks for it), then the creation ceremony of the new one. `authenticator`
   * performs the creation when the new passkey lives elsewhere (a security
   * key); by default the client's own authenticator does both.
   */
  async addPasskey(o: { name?: string; authenticator?: Authenticator; onApprove?: () => void | Promise<void> } = {}): Promise<Schemas["PasskeyInfo"]> {
    const begin = ok(await this.api.POST("/v1/auth/add-passkey/begin", {}), "addPasskeyBegin")
    const credential = await (o.authenticator ?? this.authenticator()).create(begin.options as unknown as CreationOptionsJSON)
    // An existing passkey approves exactly this new one (its credential id
    // and public key), so the server cannot add a passkey of its own.
    const ap = ok(
      await this.api.POST("/v1/auth/add-passkey/approve/begin", {
        body: { ceremony_id: begin.ceremony_id, credential: credential as unknown as Schemas["AttestationCredential"] },
      }),
      "approvePasskeyBegin",
    )
    const options = ap.options as unknown as RequestOptionsJSON
    checkApprovalChallenge(ap.passkey_approval, options.challenge, credential as RegistrationResponseJSON)
    await o.onApprove?.()
    const approval = await this.authenticator().get(options)
    const info = ok(
      await this.api.POST("/v1/auth/add-passkey/finish", {
        body: {
          ceremony_id: begin.ceremony_id,
          credential: credential as unknown as Schemas["AttestationCredential"],
          name: o.name,
          approval: { ceremony_id: ap.ceremony_id, credential: approval as unknown as Schemas["AssertionCredential"] },
        },
      }),
      "addPasskeyFinish",
    )
    this.checks.forget()
    return info
  }

  /** Deletes a passkey after a step-up (never the last usable one: 409 last_passkey). */
  async deletePasskey(passkeyId: string): Promise<void> {
    const grant = await this.stepUp("delete_passkey", passkeyId)
    ok(
      await this.api.DELETE("/v1/me/passkeys/{passkey_id}", {
        params: { path: { passkey_id: passkeyId }, header: { "Sovereign-Step-Up": grant } },
      }),
      "deleteMyPasskey",
    )
  }

  /**
   * Ends every other session of the account after a step-up; with
   * removePasskeysAddedAfter, also deletes the passkeys added after that
   * time (except the one that made the step-up).
   */
  async endOtherSessions(o: { removePasskeysAddedAfter?: Date } = {}): Promise<{ ended: number; passkeysRemoved: number }> {
    const grant = await this.stepUp("end_other_sessions")
    const r = ok(
      await this.api.DELETE("/v1/me/sessions", {
        params: {
          header: { "Sovereign-Step-Up": grant },
          query: o.removePasskeysAddedAfter ? { remove_passkeys_added_after: o.removePasskeysAddedAfter.toISOString() } : {},
        },
      }),
      "endMyOtherSessions",
    )
    return { ended: r.ended, passkeysRemoved: r.passkeys_removed }
  }

  /**
   * Recovers an account with a recovery invite an admin made: registers a
   * new passkey on this (clean) device; the account's old passkeys and every
   * session end. Signs in as a new device named deviceName.
   */
  async recover(r: { inviteCode: string; deviceName: string; passkeyName?: string }): Promise<SessionRecord> {
    if (this.session) throw new Error("this storage already holds a session")
    const begin = ok(await this.api.POST("/v1/auth/recover/begin", { body: { invite_code: r.inviteCode } }), "recoverBegin")
    const credential = await this.authenticator().create(begin.options as unknown as CreationOptionsJSON)
    const grant = ok(
      await this.api.POST("/v1/auth/recover/finish", {
        body: {
          ceremony_id: begin.ceremony_id,
          credential: credential as unknown as Schemas["AttestationCredential"],
          device_name: r.deviceName,
          passkey_name: r.passkeyName,
        },
      }),
      "recoverFinish",
    )
    const session = await this.startSession(grant)
    await this.bindDevice()
    return session
  }

  /** Ends this session on the server; the device and its MLS state stay for the next login. */
  async logout(): Promise<void> {
    this.stop()
    ok(await this.api.POST("/v1/auth/logout", {}), "logout")
    if (this.session) await this.store.putSession({ ...this.session, token: "" })
  }

  // --- key packages ------------------------------------------------------------

  /**
   * Keeps keyPackageTarget normal key packages and one last-resort package
   * on the server: counts what is left and uploads the difference.
   */
  async replenishKeyPackages(): Promise<number> {
    const counts = ok(await this.api.GET("/v1/key-packages/count", {}), "countKeyPackages")
    const suite = suiteId(this.mls.suite)
    const mine = counts.suites?.find((s) => s.cipher_suite === suite)
    const target = this.o.keyPackageTarget ?? 10
    const missing = Math.max(0, target - (mine?.normal ?? 0))
    const needLastResort = !mine?.last_resort
    const n = missing + (needLastResort ? 1 : 0)
    if (n === 0) return 0
    const kps = await this.mls.generateKeyPackages(n, { lastResort: needLastResort })
    try {
      ok(
        await this.api.POST("/v1/key-packages", {
          body: {
            key_packages: kps.map((k) => toBase64(k.keyPackage)),
            last_resort_index: needLastResort ? 0 : undefined,
          },
        }),
        "uploadKeyPackages",
      )
    } catch (e) {
      await this.mls.forgetKeyPackages(kps.map((k) => k.ref))
      throw e
    }
    return n
  }

  // --- groups -------------------------------------------------------------------

  /** Creates a group with this device as its only member; returns its id. */
  async createGroup(): Promise<Uint8Array> {
    return this.lock.run(async () => {
      const { groupId, groupInfo } = await this.mls.createGroup()
      try {
        ok(
          await this.api.POST("/v1/groups", { body: { group_id: toBase64url(groupId), group_info: toBase64(groupInfo) } }),
          "createGroup",
        )
      } catch (e) {
        await this.mls.dropGroup(groupId)
        throw e
      }
      return groupId
    })
  }

  /** The server's view of a group: epoch and member devices with their users. */
  async group(groupId: Uint8Array): Promise<Schemas["GroupBody"]> {
    return ok(
      await this.api.GET("/v1/groups/{group_id}", { params: { path: { group_id: toBase64url(groupId) } } }),
      "getGroup",
    )
  }

  /**
   * Adds every device of the given users (ids or usernames): claims one key
   * package per device, commits with the ratchet tree in the Welcome, and
   * applies the new epoch once the server accepted it. Returns the added
   * device ids.
   */
  async addMembers(groupId: Uint8Array, users: string[]): Promise<string[]> {
    const kps: Uint8Array[] = []
    for (const u of users) {
      const claim = ok(
        await this.api.POST("/v1/users/{user}/key-packages/claim", {
          params: { path: { user: u } },
          body: { cipher_suite: suiteId(this.mls.suite) },
        }),
        "claimKeyPackages",
      )
      const claimed: { bytes: Uint8Array; deviceId: string; signatureKey: Uint8Array }[] = []
      for (const k of claim.key_packages ?? []) {
        const bytes = fromBase64(k.key_package as unknown as string)
        try {
          const p = parseKeyPackage(bytes, this.mls.suite)
          claimed.push({ bytes, deviceId: p.deviceId, signatureKey: p.keyPackage.leafNode.signaturePublicKey })
        } catch {
          // Not a key package we could add anyway.
        }
      }
      // A key package whose device no passkey of the user approved is never added.
      kps.push(...(await this.checks.keyPackages(u, claimed, groupId)))
    }
    if (kps.length === 0) throw new Error("none of these users has a device with a key package")
    const res = await this.commit(groupId, async (members) => ({
      // On a retry, a device the winning commit added meanwhile is skipped.
      add: kps.filter((kp) => !members.has(this.deviceOfKeyPackage(kp))),
    }))
    return res.addedDevices
  }

  private deviceOfKeyPackage(kp: Uint8Array): string {
    return parseDevice(kp, this.mls.suite)
  }

  /** Removes devices (by id) from a group. */
  async removeDevices(groupId: Uint8Array, deviceIds: string[]): Promise<void> {
    await this.commit(groupId, async (members) => ({ removeDevices: deviceIds.filter((d) => members.has(d)) }))
  }

  /** Removes every device of the given users (usernames or ids) from a group. */
  async removeMembers(groupId: Uint8Array, users: string[]): Promise<string[]> {
    const g = await this.group(groupId)
    const devices = (g.members ?? []).filter((m) => users.includes(m.username) || users.includes(m.user_id)).map((m) => m.device_id)
    await this.removeDevices(groupId, devices)
    return devices
  }

  /** An empty commit: fresh keys for this device (post-compromise security). */
  async updateKeys(groupId: Uint8Array): Promise<number> {
    return (await this.commit(groupId, async () => ({}))).epoch
  }

  /**
   * Builds, sends and applies a commit; on 409 processes the feed up to the
   * winning commit and builds it again from the new state. `change` is
   * called before each attempt with the current member devices.
   */
  async commit(
    groupId: Uint8Array,
    change: (members: Set<string>) => Promise<{ add?: Uint8Array[]; removeDevices?: string[] }>,
  ): Promise<CommitResult> {
    return (await this.commitIfNeeded(groupId, change))!
  }

  /**
   * commit, except that `change` may answer null (nothing to do, e.g. the
   * winner of a race already made the change): then nothing is sent and
   * the result is null.
   */
  private async commitIfNeeded(
    groupId: Uint8Array,
    change: (members: Set<string>) => Promise<{ add?: Uint8Array[]; removeDevices?: string[] } | null>,
  ): Promise<CommitResult | null> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.lock.run(async () => {
        const members = new Set((await this.mls.members(groupId)).map((m) => m.deviceId))
        const c = await change(members)
        if (c === null) return { skipped: true as const }
        const pending: PendingCommit = await this.mls.prepareCommit(groupId, c, encodeHead(this.history.head(groupId)))
        const r = await this.api.POST("/v1/groups/{group_id}/commits", {
          params: { path: { group_id: toBase64url(groupId) }, header: { "Idempotency-Key": crypto.randomUUID() } },
          body: {
            commit: toBase64(pending.commit),
            welcome: pending.welcome ? toBase64(pending.welcome) : undefined,
            group_info: toBase64(pending.groupInfo),
            removed_devices: pending.removedDevices.length ? pending.removedDevices : undefined,
          },
        })
        if (r.response.status === 409) {
          return { conflict: problemOf(r.error, r.response, "commitGroup") }
        }
        if (r.response.status === 422 && (r.error as Problem | undefined)?.code === "pending_removal_missing") {
          // A member left just now: process its proposal, then commit it too.
          return { conflict: problemOf(r.error, r.response, "commitGroup") }
        }
        const body = ok(r, "commitGroup")
        await this.mls.applyCommit(pending)
        return {
          done: {
            epoch: body.epoch,
            seq: body.commit.seq,
            addedDevices: body.added_devices ?? [],
            removedDevices: body.removed_devices ?? [],
          },
        }
      })
      if ("skipped" in outcome) return null
      if (outcome.done) return outcome.done
      if (attempt >= max) throw outcome.conflict
      await this.catchUpGroup(groupId, outcome.conflict.problem.current_epoch)
    }
  }

  /** Processes waiting feed events until the group reaches epoch (or the feed is drained). */
  private async catchUpGroup(groupId: Uint8Array, epoch?: number): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const drained = await this.catchUp()
      if (epoch === undefined || (await this.mls.epoch(groupId)) >= epoch) return
      if (drained) await new Promise((r) => setTimeout(r, 20 * (i + 1))) // the winner's commit is not in our feed yet
    }
    throw new Error(`group did not reach epoch ${epoch}`)
  }

  // --- people and devices ---------------------------------------------------------

  /** Finds a user by exact username (404 ApiError user_not_found when there is none). */
  async lookupUser(username: string): Promise<DirectoryUser> {
    return ok(await this.api.GET("/v1/users/{username}", { params: { path: { username } } }), "lookupUser")
  }

  /** Searches usernames by prefix (only when the server's directory setting is "search"). */
  async searchUsers(prefix: string): Promise<DirectoryUser[]> {
    return ok(await this.api.GET("/v1/users", { params: { query: { prefix } } }), "searchUsers").users ?? []
  }

  /** Changes this user's display name. */
  async setDisplayName(displayName: string): Promise<Schemas["UserInfo"]> {
    return ok(await this.api.PATCH("/v1/me", { body: { display_name: displayName } }), "updateMe")
  }

  /**
   * Deletes this account for good (all devices leave their groups), after a
   * step-up with one of the account's passkeys (the authenticator asks for
   * it). The local storage is cleared afterwards.
   */
  async deleteAccount(): Promise<void> {
    const grant = await this.stepUp("delete_account")
    this.stop()
    ok(
      await this.api.DELETE("/v1/me", {
        params: { header: { "Sovereign-Step-Up": grant } },
        body: { confirm_username: this.username },
      }),
      "deleteMe",
    )
    await this.store.clear()
    this.session = undefined
    this.mlsClient = undefined
  }

  /**
   * Joins a group by external commit: for a new device of a user who is in
   * the group on another device, or this device rejoining after its feed
   * expired (its old leaf is replaced). Retries lost races. Returns the
   * group's new epoch.
   */
  async joinExternally(groupId: Uint8Array): Promise<number> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const gi = ok(
        await this.api.GET("/v1/groups/{group_id}/group-info", { params: { path: { group_id: toBase64url(groupId) } } }),
        "getGroupInfo",
      )
      const outcome = await this.lock.run(async () => {
        const pending = await this.mls.prepareExternalJoin(fromBase64(gi.group_info as unknown as string))
        const r = await this.api.POST("/v1/groups/{group_id}/commits", {
          params: { path: { group_id: toBase64url(groupId) }, header: { "Idempotency-Key": crypto.randomUUID() } },
          body: { commit: toBase64(pending.commit), group_info: toBase64(pending.groupInfo) },
        })
        if (r.response.status === 409) return { conflict: problemOf(r.error, r.response, "commitGroup") }
        const body = ok(r, "commitGroup")
        await this.mls.applyExternalJoin(pending, body.commit.seq)
        // A (re)join starts this device's view of the chain afresh (docs/verification.md, Limits).
        this.history.forget(groupId)
        await this.store.deleteChain(groupId)
        return { epoch: body.epoch }
      })
      if ("epoch" in outcome) return outcome.epoch!
      if (attempt >= max) throw outcome.conflict
      await new Promise((res) => setTimeout(res, 50 * attempt + Math.random() * 100))
    }
  }

  /**
   * Joins, by external commit, every group where another device of this
   * user is a member and this one is not (what a new device does after its
   * first sign-in). Returns the groups joined.
   */
  async joinMyGroups(): Promise<Uint8Array[]> {
    const list = ok(await this.api.GET("/v1/me/groups", {}), "listJoinableGroups")
    const joined: Uint8Array[] = []
    for (const g of list.groups ?? []) {
      const gid = fromBase64(g.id)
      if (await this.mls.hasGroup(gid)) continue
      await this.joinExternally(gid)
      joined.push(gid)
    }
    return joined
  }

  /**
   * Leaves a group: sends a Remove proposal for our own leaf (another
   * member's client commits it) and forgets the group. Returns true when we
   * were the last member and the server deleted the group.
   */
  async leaveGroup(groupId: Uint8Array): Promise<boolean> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const r = await this.lock.run(async () => {
        const { proposal } = await this.mls.prepareLeave(groupId, encodeHead(this.history.head(groupId)))
        const res = await this.api.POST("/v1/groups/{group_id}/leave", {
          params: { path: { group_id: toBase64url(groupId) } },
          body: { proposal: toBase64(proposal) },
        })
        if (res.response.ok) {
          await this.mls.dropGroup(groupId)
          this.history.forget(groupId)
        }
        return res
      })
      if (r.response.status === 409 && attempt < max) {
        await this.catchUpGroup(groupId, problemOf(r.error, r.response, "leaveGroup").problem.current_epoch)
        continue
      }
      return ok(r, "leaveGroup").group_deleted
    }
  }

  /** Commits the proposals waiting in a group (members that left), after a short random delay. */
  private commitPendingSoon(groupId: Uint8Array): void {
    const key = toBase64url(groupId) + "/pending"
    if (this.removals.has(key)) return
    let resolve!: () => void
    const entry: PendingRemoval = { done: new Promise<void>((r) => (resolve = r)), resolve }
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      this.commitIfNeeded(groupId, async () => ((await this.mls.pendingRemovals(groupId)).length > 0 ? {} : null))
        .catch(() => null)
        .finally(() => {
          this.removals.delete(key)
          resolve()
        })
    }, Math.random() * (this.o.autoRemoveMaxDelayMs ?? 2000))
    this.removals.set(key, entry)
  }

  /** Uploads fresh key packages for those a key_packages_expiring notice announced. */
  private replaceExpiringSoon(n: Record<string, unknown>): void {
    if (n.cipher_suite !== suiteId(this.mls.suite)) return
    const normal = typeof n.normal === "number" ? Math.min(n.normal, 100) : 0
    const lastResort = n.last_resort === true
    const prev = this.replenishing ?? Promise.resolve()
    this.replenishing = prev
      .then(() => this.uploadFresh(normal, lastResort))
      .catch(() => 0)
      .then(() => {
        this.replenishing = undefined
      })
  }

  /** Generates and uploads `normal` key packages and, if asked, a new last-resort one. */
  async uploadFresh(normal: number, lastResort: boolean): Promise<number> {
    const n = normal + (lastResort ? 1 : 0)
    if (n === 0) return 0
    const kps = await this.mls.generateKeyPackages(n, { lastResort })
    try {
      ok(
        await this.api.POST("/v1/key-packages", {
          body: { key_packages: kps.map((k) => toBase64(k.keyPackage)), last_resort_index: lastResort ? 0 : undefined },
        }),
        "uploadKeyPackages",
      )
    } catch (e) {
      await this.mls.forgetKeyPackages(kps.map((k) => k.ref))
      throw e
    }
    return n
  }

  // --- messages -------------------------------------------------------------------

  /**
   * Encrypts and sends an application message. On 409 (our epoch is too
   * old for the server) catches up and sends a fresh encryption.
   */
  async send(groupId: Uint8Array, message: string | Uint8Array, opts: SendOptions = {}): Promise<Schemas["ReceiptBody"]> {
    const plaintext = typeof message === "string" ? utf8.encode(message) : message
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const r = await this.lock.run(async () => {
        const bad = (await this.store.getUnverified(groupId)).length > 0 ? await this.checks.stillIn(groupId, await this.mls.members(groupId)) : []
        if (bad.length > 0) {
          throw new ClientError("unverified_device_in_group", `the group holds devices no passkey approved (${bad.join(", ")}): remove them before sending`)
        }
        let bytes: Uint8Array
        try {
          bytes = (await this.mls.encrypt(groupId, plaintext, encodeHead(this.history.head(groupId)))).message
        } catch (e) {
          // A member left and its Remove proposal is not committed yet: MLS
          // sends nothing in an epoch with proposals pending, so commit it
          // first (below) and encrypt in the new epoch.
          if ((await this.mls.pendingRemovals(groupId)).length > 0) return { pending: true as const }
          throw e
        }
        // One key for every attempt of this message unless it lost an epoch
        // race (409: the server stored nothing): a retry after a lost answer
        // returns the first receipt instead of storing a second copy.
        const key = opts.idempotencyKey ? (attempt === 1 ? opts.idempotencyKey : `${opts.idempotencyKey}.${attempt}`) : crypto.randomUUID()
        return this.api.POST("/v1/groups/{group_id}/messages", {
          params: { path: { group_id: toBase64url(groupId) }, header: { "Idempotency-Key": key } },
          body: { message: toBase64(bytes) },
        })
      })
      if ("pending" in r) {
        if (attempt >= max) throw new MlsError("a member's removal is still pending in this group")
        await this.commitIfNeeded(groupId, async () => ((await this.mls.pendingRemovals(groupId)).length > 0 ? {} : null))
        continue
      }
      if (r.response.status === 409 && attempt < max) {
        await this.catchUpGroup(groupId, problemOf(r.error, r.response, "sendMessage").problem.current_epoch)
        continue
      }
      return ok(r, "sendMessage")
    }
  }

  // --- attachments ------------------------------------------------------------------

  private attachmentTransport(): AttachmentTransport {
    return { baseUrl: this.o.baseUrl.replace(/\/$/, ""), token: () => this.token, fetch: this.o.fetch }
  }

  /**
   * Encrypts data on this device and uploads it for the group (resuming
   * after network failures); send the returned pointer inside an MLS
   * message (e.g. JSON in send()): the key and digest never reach the server.
   * A Blob (a File) is read a chunk at a time, never whole.
   */
  async uploadAttachment(groupId: Uint8Array, data: AttachmentSource, opts: UploadOptions = {}): Promise<AttachmentPointer> {
    return uploadAttachment(this.attachmentTransport(), toBase64url(groupId), data, opts)
  }

  /** Downloads an attachment a pointer names, verifies its digest and decrypts it into one array. */
  async downloadAttachment(p: AttachmentPointer, opts: DownloadOptions = {}): Promise<Uint8Array> {
    return downloadAttachment(this.attachmentTransport(), p, opts)
  }

  /** Downloads an attachment into a Blob, decrypting chunk by chunk as it arrives (digest checked at the end). */
  async downloadAttachmentBlob(p: AttachmentPointer, opts: DownloadOptions = {}): Promise<Blob> {
    return downloadAttachmentBlob(this.attachmentTransport(), p, opts)
  }

  /**
   * Downloads an attachment as its decrypted chunks (each authenticated);
   * the digest and padding are checked when the iteration ends, and a
   * throw means everything yielded must be discarded.
   */
  downloadAttachmentChunks(p: AttachmentPointer, opts: DownloadOptions = {}): AsyncGenerator<Uint8Array> {
    return downloadAttachmentChunks(this.attachmentTransport(), p, opts)
  }

  // --- the feed ---------------------------------------------------------------------

  /**
   * Registers a listener for history_mismatch findings: the server withheld,
   * reordered or forked a group's history for this device (or for the
   * member whose message showed it). Returns a function removing it.
   */
  onHistoryMismatch(l: HistoryListener): () => void {
    this.historyListeners.add(l)
    return () => this.historyListeners.delete(l)
  }

  /**
   * The conversation's safety code at this device's current epoch
   * (docs/verification.md): the same for every member at that epoch, and
   * different for a member of another group with the same id. Compare the
   * digits by eye, or scan the other device's `qr` (compareSafetyQr).
   */
  async safetyCode(groupId: Uint8Array): Promise<SafetyCode> {
    return this.lock.run(() => this.mls.safetyCode(groupId))
  }

  /**
   * Registers a listener for device alarms: a device no passkey of its user
   * approved (device_unverified), a passkey no other passkey approved
   * (passkey_unapproved), an account reset by recovery (account_reset).
   * Returns a function removing it.
   */
  onDeviceUnverified(l: DeviceAlarmListener): () => void {
    this.deviceListeners.add(l)
    return () => this.deviceListeners.delete(l)
  }

  /** Every device alarm raised since the client was opened. */
  get deviceAlarms(): readonly DeviceAlarm[] {
    return this.devices.alarms
  }

  /**
   * Whether each member device of a group was approved by a passkey of its
   * user, by device id (for a member list's verified marks).
   */
  async verifyGroupDevices(groupId: Uint8Array): Promise<Map<string, DeviceCheck>> {
    const members = await this.lock.run(() => this.mls.members(groupId))
    return this.checks.status(groupId, members)
  }

  /**
   * My devices as the directory serves them, each with the passkey that
   * approved it (credential id, base64url) when its binding verifies.
   */
  async verifyMyDevices(): Promise<{ deviceId: string; check: DeviceCheck }[]> {
    this.checks.forget()
    const me = await this.checks.user(this.userId)
    const out: { deviceId: string; check: DeviceCheck }[] = []
    for (const d of me.devices ?? []) {
      const key = d.id === this.deviceId ? this.mls.signatureKey : d.signature_key ? fromBase64(d.signature_key) : undefined
      out.push({ deviceId: d.id, check: key ? await this.devices.verifyDevice(me, d.id, key) : { ok: false, reason: "unbound", detail: "no binding" } })
    }
    return out
  }

  /** Devices of a group that failed verification and are still members: sending there is refused until they are removed. */
  async unverifiedDevices(groupId: Uint8Array): Promise<string[]> {
    return this.checks.stillIn(groupId, await this.mls.members(groupId))
  }

  /** Registers a listener for processed feed events; returns a function removing it. */
  on(l: Listener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }

  /**
   * Processes one feed event (in seq order; events at or below the cursor
   * are skipped). MLS state, then the cursor, are persisted before the
   * listeners run and before the seq is acknowledged.
   */
  async process(ev: FeedEvent): Promise<ClientEvent | undefined> {
    const found: HistoryMismatch[] = []
    const out = await this.lock.run(async () => {
      // The chain is checked before the cursor: an event below it that this
      // device never saw is a reordering, not a duplicate.
      found.push(...this.history.observe(ev))
      if (ev.seq <= this.cursor) return undefined
      let result: ClientEvent["result"]
      if (ev.kind === "notice") {
        let notice: Record<string, unknown> = {}
        try {
          notice = JSON.parse(utf8.decode(ev.payload)) as Record<string, unknown>
        } catch {
          notice = { type: "unreadable" }
        }
        result =
          notice.type === "new_device" && typeof notice.device_id === "string"
            ? newDeviceNotice(notice, notice.device_id)
            : { kind: "notice", notice }
      } else {
        result = await this.mls.receive(ev)
        // Application messages, commits and proposals carry their sender's chain head.
        if (result.kind === "application" || result.kind === "proposal") {
          found.push(...this.history.memberHead(result.groupId, decodeHead(result.authenticatedData), result.senderDeviceId))
        } else if (result.kind === "commit") {
          found.push(...this.history.memberHead(result.groupId, decodeHead(result.authenticatedData), result.committerDeviceId))
        }
      }
      if (result.kind === "joined" || (result.kind === "commit" && result.removedSelf)) {
        // A new membership (a Welcome) starts this device's chain afresh; a removal ends it.
        this.history.forget(result.groupId)
        await this.store.deleteChain(result.groupId)
      } else if (isChained(ev) && this.history.head(ev.groupId!)?.seq === ev.seq) {
        const snap = this.history.snapshot(ev.groupId!)
        if (snap) await this.store.putChain(ev.groupId!, snap)
      }
      this.cursor = ev.seq
      await this.store.putCursor(ev.seq)
      return { seq: ev.seq, eventId: ev.id, kind: ev.kind, groupId: ev.groupId ?? (result.kind === "joined" ? result.groupId : undefined), result, event: ev }
    })
    for (const m of found) {
      this.historyMismatches.push(m)
      for (const l of this.historyListeners) await l(m)
    }
    if (!out) return undefined
    this.scheduleAck()
    if (out.result.kind === "notice" && isKeyPackagesLow(out.result.notice)) this.replenishSoon()
    if (out.result.kind === "notice" && out.result.notice.type === "key_packages_expiring") this.replaceExpiringSoon(out.result.notice)
    if (out.result.kind === "proposal" && out.result.removesDevices.length > 0 && out.result.senderDeviceId !== this.session?.deviceId) {
      // A member left by proposing its own removal: the next commit must
      // include it, so commit it soon (one member wins, the others find
      // nothing left to do).
      this.commitPendingSoon(out.result.groupId)
    }
    if (out.result.kind === "joined") {
      this.replenishSoon() // a normal key package was used up
      await this.checkLeaves(out.result.groupId, undefined, "welcome")
    }
    if (out.result.kind === "commit" && out.result.addedDevices.length > 0 && !out.result.removedSelf) {
      await this.checkLeaves(out.result.groupId, out.result.addedDevices, "commit")
    }
    if (out.result.kind === "notice" && out.groupId) {
      const gone = removedDeviceOf(out.result.notice)
      if (gone && gone !== this.session?.deviceId && (this.o.autoRemove ?? true)) this.removeSoon(out.groupId, gone)
    }
    for (const l of this.listeners) await l(out)
    return out
  }

  /** Verifies the leaves of a group (all, or the devices named); failures are reported and block sending there. */
  private async checkLeaves(groupId: Uint8Array, deviceIds: string[] | undefined, where: string): Promise<void> {
    try {
      const members = await this.lock.run(() => this.mls.members(groupId))
      const leaves = deviceIds ? members.filter((m) => deviceIds.includes(m.deviceId)) : members
      await this.checks.leaves(groupId, leaves, where, this.session?.deviceId)
    } catch (e) {
      // The group is gone or unreadable: nothing to send there anyway.
      if (!(e instanceof MlsError)) throw e
    }
  }

  /**
   * Commits the removal of a device the server cut off, after a random
   * delay, unless another member has done it first (or the device is not in
   * this client's view of the group). A failure is dropped: another member
   * may still do it, and the app can call removeDevices.
   */
  private removeSoon(groupId: Uint8Array, deviceId: string): void {
    const key = toBase64url(groupId) + "/" + deviceId
    if (this.removals.has(key)) return
    let resolve!: () => void
    const entry: PendingRemoval = { done: new Promise<void>((r) => (resolve = r)), resolve }
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      this.commitIfNeeded(groupId, async (members) => (members.has(deviceId) ? { removeDevices: [deviceId] } : null))
        .catch(() => null)
        .finally(() => {
          this.removals.delete(key)
          resolve()
        })
    }, Math.random() * (this.o.autoRemoveMaxDelayMs ?? 2000))
    this.removals.set(key, entry)
  }

  private replenishSoon(): void {
    this.replenishing ??= this.replenishKeyPackages()
      .catch(() => 0)
      .then(() => {
        this.replenishing = undefined
      })
  }

  /** Waits for background work (key-package replenishment, automatic removals) to finish. */
  async idle(): Promise<void> {
    await this.replenishing
    await Promise.all([...this.removals.values()].map((r) => r.done))
  }

  /**
   * Fetches and processes every event waiting in the feed now (long-poll
   * with timeout 0). Returns true when the feed is drained.
   */
  async catchUp(): Promise<boolean> {
    for (;;) {
      let page
      try {
        page = await pollOnce({ baseUrl: this.o.baseUrl, token: () => this.need().token, fetch: this.o.fetch }, this.cursor)
      } catch (e) {
        if (await this.maybeResync(e)) continue
        throw e
      }
      for (const ev of page.events) await this.process(ev)
      if (!page.hasMore) {
        await this.flushAck()
        return true
      }
    }
  }

  /**
   * Follows the feed until signal aborts: SSE with long-poll fallback
   * ("auto"), or one transport. Resolves when stopped; rejects on a fatal
   * answer (session ended: 401; cursor expired: 410).
   */
  async run(signal: AbortSignal, opts: { transport?: "auto" | Transport; pollTimeout?: number } = {}): Promise<void> {
    this.feed = new Feed({
      baseUrl: this.o.baseUrl,
      token: () => this.need().token,
      after: this.cursor,
      transport: opts.transport ?? "auto",
      pollTimeout: opts.pollTimeout,
      fetch: this.o.fetch,
    })
    try {
      for (;;) {
        try {
          for await (const ev of this.feed.events(signal)) await this.process(ev)
          return
        } catch (e) {
          if (signal.aborted || !(await this.maybeResync(e))) throw e
          this.feed = new Feed({
            baseUrl: this.o.baseUrl,
            token: () => this.need().token,
            after: this.cursor,
            transport: opts.transport ?? "auto",
            pollTimeout: opts.pollTimeout,
            fetch: this.o.fetch,
          })
        }
      }
    } finally {
      this.feed = undefined
      await this.flushAck().catch(() => {})
    }
  }

  /**
   * Handles a 410 of the feed when autoRejoin is on: rejoins each group the
   * server lists by external commit (replacing our stale leaf), then moves
   * the cursor to where the server said to resume. Returns false for any
   * other error.
   */
  private async maybeResync(e: unknown): Promise<boolean> {
    const err = e instanceof FeedClosedError ? e.cause : e
    if (!(err instanceof ApiError) || err.status !== 410 || !err.problem.resync || this.o.autoRejoin === false) return false
    const r = err.problem.resync
    const out: ResyncResult = { resumeAfter: r.resume_after, rejoined: [], failed: [] }
    for (const g of r.groups ?? []) {
      const gid = fromBase64(g.group_id)
      try {
        await this.joinExternally(gid)
        out.rejoined.push(gid)
      } catch (error) {
        out.failed.push({ groupId: gid, error: error instanceof Error ? error : new Error(String(error)) })
      }
    }
    await this.lock.run(async () => {
      if (r.resume_after > this.cursor) {
        this.cursor = r.resume_after
        await this.store.putCursor(this.cursor)
      }
    })
    this.o.onResync?.(out)
    return true
  }

  /** The transport the running feed uses now. */
  get transport(): Transport | undefined {
    return this.feed?.currentTransport
  }

  private scheduleAck(): void {
    if (this.ackTimer) return
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined
      void this.flushAck().catch(() => {})
    }, 200)
  }

  /** Acknowledges every processed event to the server now. */
  async flushAck(): Promise<void> {
    if (this.ackTimer) {
      clearTimeout(this.ackTimer)
      this.ackTimer = undefined
    }
    const seq = this.cursor
    if (seq <= this.ackedSeq || !this.session?.token) return
    ok(await this.api.POST("/v1/sync/ack", { body: { seq } }), "ackFeed")
    this.ackedSeq = Math.max(this.ackedSeq, seq)
  }

  /** Stops background timers (call before dropping the client). */
  stop(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.ackTimer = undefined
    for (const [key, r] of this.removals) {
      if (r.timer === undefined) continue // already committing: let it finish
      clearTimeout(r.timer)
      this.removals.delete(key)
      r.resolve()
    }
  }
}

/** An automatic removal waiting for its timer (timer unset once committing). */
interface PendingRemoval {
  timer?: ReturnType<typeof setTimeout>
  done: Promise<void>
  resolve: () => void
}

/** Options of SovereignClient.send. */
export interface SendOptions {
  /**
   * The message's Idempotency-Key (e.g. a UUID kept with a queued message):
   * sending again with the same key after a lost answer never stores a
   * second copy. Default: a fresh key per call.
   */
  idempotencyKey?: string
}

/** What commit returns: the new epoch and the commit's place in the feed. */
export interface CommitResult {
  epoch: number
  seq: number
  addedDevices: string[]
  removedDevices: string[]
}

/** The device a `remove_device` notice asks the members to remove, if it is one. */
function removedDeviceOf(n: Record<string, unknown>): string | undefined {
  return n.type === "remove_device" && typeof n.device_id === "string" && n.device_id !== "" ? n.device_id : undefined
}

function isKeyPackagesLow(n: Record<string, unknown>): boolean {
  return typeof n.type === "string" && n.type === "key_packages_low"
}

/** The SDK event of a new_device notice; a location is kept only when well-formed. */
export function newDeviceNotice(n: Record<string, unknown>, deviceId: string): NewDeviceNotice {
  const out: NewDeviceNotice = { kind: "new_device", deviceId, deviceName: String(n.device_name ?? ""), createdAt: String(n.created_at ?? "") }
  const loc = n.location as Record<string, unknown> | undefined
  if (loc && typeof loc === "object" && typeof loc.country === "string" && /^[A-Z]{2}$/.test(loc.country)) {
    out.location = typeof loc.city === "string" && loc.city !== "" ? { country: loc.country, city: loc.city } : { country: loc.country }
  }
  return out
}

function parseDevice(kp: Uint8Array, suite: string): string {
  return parseKeyPackage(kp, suite as typeof DEFAULT_SUITE).deviceId
}
