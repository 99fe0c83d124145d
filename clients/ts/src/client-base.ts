// The core of SovereignClient: its state, the session, and the passkey
// ceremonies (register, login, device binding, step-up, passkeys, recovery).
// client-groups.ts adds key packages, groups and people; client.ts messages,
// attachments and the feed.
import createClient, { type Client } from "openapi-fetch"
import type { paths } from "./schema.js"
import { fromBase64, toBase64url } from "./bytes.js"
import { Feed } from "./feed.js"
import { HistoryVerifier, type HistoryMismatch } from "./chain.js"
import { MlsClient } from "./mls.js"
import { ClientStore, type SessionRecord } from "./storage.js"
import type { Authenticator, CreationOptionsJSON, RegistrationResponseJSON, RequestOptionsJSON } from "./webauthn.js"
import { DeviceVerifier, type ServedUser } from "./attest-verifier.js"
import { DeviceChecks, checkApprovalChallenge, checkBindingChallenge } from "./device-checks.js"
import type { SovereignClientOptions, DirectoryUser, Listener, HistoryListener, DeviceAlarmListener, Schemas, PendingRemoval } from "./client-types.js"
import { Mutex, ok } from "./client-util.js"

/** The state and the passkey ceremonies of SovereignClient (see client.ts). */
export abstract class ClientBase {
  /** A user as the directory shows them (client-groups.ts). */
  abstract lookupUser(username: string): Promise<DirectoryUser>
  /** A group as the server lists it (client-groups.ts). */
  abstract group(groupId: Uint8Array): Promise<Schemas["GroupBody"]>
  /** Stops the feed's timers (client.ts). */
  abstract stop(): void

  readonly api: Client<paths>
  readonly store: ClientStore
  protected session?: SessionRecord
  protected mlsClient?: MlsClient
  protected readonly lock = new Mutex()
  protected readonly listeners = new Set<Listener>()
  protected readonly historyListeners = new Set<HistoryListener>()
  /** The group chains this client follows (docs/verification.md). */
  readonly history = new HistoryVerifier()
  /** Every history_mismatch found since the client was opened. */
  readonly historyMismatches: HistoryMismatch[] = []
  protected readonly deviceListeners = new Set<DeviceAlarmListener>()
  /** Checks that every device met was approved by a passkey of its user (docs/verification.md). */
  readonly devices: DeviceVerifier
  protected readonly checks: DeviceChecks
  protected cursor = 0
  protected ackedSeq = 0
  protected ackTimer?: ReturnType<typeof setTimeout>
  protected feed?: Feed
  protected replenishing?: Promise<void>
  /** Pending automatic removals by group and device, with their timers. */
  protected readonly removals = new Map<string, PendingRemoval>()

  protected constructor(protected readonly o: SovereignClientOptions) {
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

  protected need(): SessionRecord {
    if (!this.session) throw new Error("not signed in")
    return this.session
  }

  protected authenticator(): Authenticator {
    if (!this.o.authenticator) throw new Error("no authenticator configured")
    return this.o.authenticator
  }

  protected async startSession(g: Schemas["SessionGrant"]): Promise<SessionRecord> {
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
}
