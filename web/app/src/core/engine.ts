// The app's engine: opens the sealed local storage and the SDK client,
// signs in, follows the feed (SSE with long-poll fallback, in the SDK),
// handles 401 (signed out) and 410 (cursor older than retention), and wires
// the conversations, the offline queue and my devices together.
import { ApiError, FeedClosedError, SovereignClient, toBase64url, type Problem } from "@sovereign-im/client"
import { AppDB, SealedKeyValueStore, Sealer } from "../storage/db"
import { Attachments } from "./attachments"
import { Conversations } from "./conversations"
import { Devices } from "./devices"
import { onAccountNotice } from "./notices"
import { People } from "./people"
import { Outbox } from "./outbox"
import { BrowserPasskeys, deviceName } from "./passkeys"
import { accountAlerts, banner, bindingNeeded, booted, historyWarnings, me, network, trust } from "./state"
import { addAlarm, emptyTrust } from "./trust"
import { t } from "../strings"

/** How often an online device checks for conversations of mine it is not in yet (it joins them by external commit). */
const JOIN_SYNC_MS = 15_000

export class Engine {
  readonly passkeys = new BrowserPasskeys()
  readonly convs: Conversations
  readonly outbox: Outbox
  readonly devices: Devices
  readonly attachments: Attachments
  readonly people: People
  private client!: SovereignClient
  private stop?: AbortController
  private timers: ReturnType<typeof setInterval>[] = []

  private constructor(
    private readonly db: AppDB,
    private readonly sealer: Sealer,
  ) {
    const c = () => this.client
    this.convs = new Conversations(db, sealer, c)
    this.outbox = new Outbox(db, sealer, this.convs, c)
    this.devices = new Devices(this.convs, c)
    this.attachments = new Attachments(this.convs, this.outbox, c)
    this.people = new People(c)
  }

  static async boot(): Promise<Engine> {
    const db = new AppDB()
    await db.open()
    const e = new Engine(db, await Sealer.open(db))
    await e.openClient()
    window.addEventListener("online", () => e.onOnline())
    window.addEventListener("offline", () => e.onOffline())
    navigator.serviceWorker?.addEventListener("message", (ev) => e.onWorkerMessage(ev))
    if (e.client.signedIn && e.client.token) await e.started()
    booted.value = true
    return e
  }

  private async openClient(): Promise<void> {
    this.client = await SovereignClient.open({
      baseUrl: location.origin,
      storage: new SealedKeyValueStore(this.db, this.sealer),
      authenticator: this.passkeys,
    })
    this.client.on((ev) => this.convs.onEvent(ev))
    this.client.on(onAccountNotice)
    this.client.onHistoryMismatch((m) => {
      const id = toBase64url(m.groupId)
      if (!historyWarnings.value[id]) historyWarnings.value = { ...historyWarnings.value, [id]: m.reason }
    })
    this.client.onDeviceUnverified((a) => {
      trust.value = addAlarm(trust.value, a, a.groupId ? toBase64url(a.groupId) : undefined)
    })
  }

  get sdk(): SovereignClient {
    return this.client
  }

  /** Registers with an invite; returns the account's role. */
  async register(f: { invite?: string; username: string; displayName: string }): Promise<string> {
    await this.freshStorageIfSignedOut()
    await this.client.register({ inviteCode: f.invite || undefined, username: f.username.trim().toLowerCase(), displayName: f.displayName.trim(), deviceName: deviceName() })
    const p = await this.profile()
    await this.started(p)
    return p.role
  }

  /** Signs in with a passkey (autofill: wait for the browser's suggestion instead of a prompt). */
  async login(opts: { username?: string; autofill?: boolean } = {}): Promise<void> {
    if (!opts.autofill) this.passkeys.cancel()
    this.passkeys.autofill = opts.autofill ?? false
    try {
      await this.client.login({ username: opts.username || undefined, deviceName: deviceName() })
    } catch (e) {
      // This browser's device was revoked: its keys and history are of no
      // use any more. Start afresh as a new device (a second passkey prompt).
      if (!(e instanceof ApiError && e.code === "device_revoked")) throw e
      await this.clearLocalData()
      await this.client.login({ username: opts.username || undefined, deviceName: deviceName() })
    }
    await this.started(await this.profile())
  }

  /**
   * Recovers my account with an admin's recovery invite: this browser
   * becomes a new device (any old data here is cleared), a new passkey is
   * created, and the server ends every old passkey and session.
   */
  async recover(code: string): Promise<void> {
    await this.clearLocalData()
    await this.client.recover({ inviteCode: code.trim(), deviceName: deviceName() })
    await this.started(await this.profile())
  }

  /** Deletes my account for good (step-up with a passkey, my username typed again), then this browser's data. */
  async deleteAccount(): Promise<void> {
    this.halt()
    await this.client.deleteAccount()
    await this.clearLocalData()
    me.value = null
  }

  /**
   * Registering a new account in a browser that holds a signed-out one:
   * this browser's old device data is cleared (the old device can sign in
   * again elsewhere; its MLS state here belonged to it only).
   */
  private async freshStorageIfSignedOut(): Promise<void> {
    if (this.client.signedIn) await this.clearLocalData()
  }

  private async clearLocalData(): Promise<void> {
    this.halt()
    this.convs.forgetAll()
    accountAlerts.value = []
    trust.value = emptyTrust()
    bindingNeeded.value = false
    await this.db.transaction("rw", [this.db.kv, this.db.convs, this.db.msgs, this.db.outbox], async () => {
      await Promise.all([this.db.kv.clear(), this.db.convs.clear(), this.db.msgs.clear(), this.db.outbox.clear()])
    })
    await this.openClient()
  }

  private async profile(): Promise<{ role: string; displayName?: string }> {
    const r = await this.client.api.GET("/v1/me", {})
    return { role: r.data?.user.role ?? "member", displayName: r.data?.user.display_name }
  }

  /** Binds this device's key to one of my passkeys (the legacy-device prompt). */
  async bindDevice(): Promise<void> {
    await this.client.bindDevice()
    bindingNeeded.value = false
  }

  async logout(): Promise<void> {
    this.halt()
    try {
      await this.client.logout()
    } catch {
      // the session may be gone already; the local one is cleared below anyway
    }
    me.value = null
  }

  private halt(): void {
    this.stop?.abort()
    this.stop = undefined
    for (const x of this.timers) clearInterval(x)
    this.timers = []
    this.client.stop()
  }

  private async started(p?: { role?: string; displayName?: string }): Promise<void> {
    me.value = { userId: this.client.userId, username: this.client.username, deviceId: this.client.deviceId, role: p?.role, displayName: p?.displayName }
    if (!p) {
      void this.profile()
        .then((x) => {
          if (me.value) me.value = { ...me.value, ...x }
        })
        .catch(() => undefined)
    }
    await this.convs.load()
    await this.outbox.restore()
    this.client.replenishKeyPackages().catch(() => undefined)
    this.follow()
    this.outbox.kick()
    void this.devices.sync().catch(() => undefined)
    // A device signed in before passkey bindings existed binds its key once (one passkey prompt, asked in a banner).
    void this.client.deviceBindingNeeded().then((n) => (bindingNeeded.value = n), () => undefined)
    this.timers.push(setInterval(() => void this.devices.sync().catch(() => undefined), JOIN_SYNC_MS))
  }

  /** Follows the feed until stopped; reconnects on failures, stops on 401, resyncs on 410. */
  private follow(): void {
    if (this.stop || !navigator.onLine) return
    const stop = new AbortController()
    this.stop = stop
    network.value = "connecting"
    void (async () => {
      while (!stop.signal.aborted) {
        try {
          const running = this.client.run(stop.signal)
          network.value = "online"
          await running
        } catch (e) {
          if (stop.signal.aborted) break
          const cause = e instanceof FeedClosedError ? e.cause : e instanceof ApiError ? e : undefined
          if (cause?.status === 401) {
            this.halt()
            banner.value = t.sessionEnded
            me.value = null
            return
          }
          if (cause?.status === 410) {
            await this.resync(cause.problem)
            continue
          }
          network.value = "connecting"
          await new Promise((r) => setTimeout(r, 2000))
        }
      }
    })()
  }

  /**
   * The server no longer holds events this device had not read (410):
   * resume where it says, tell the person, and mark the conversations it
   * lists as needing this device to be added again.
   */
  private async resync(p: Problem): Promise<void> {
    const resume = p.resync?.resume_after ?? 0
    const groups = (p.resync?.groups ?? []).map((g) => g.group_id)
    await this.client.store.putCursor(resume)
    this.halt()
    await this.openClient()
    await this.convs.markRejoin(groups)
    banner.value = t.resyncNotice(groups.length)
    await this.started(me.value ?? undefined)
  }

  /**
   * A push woke the service worker while this page runs: this page owns
   * the MLS state, so it catches up with its feed, decrypts here, and
   * tells the worker who wrote (the worker never decrypts: two holders of
   * one MLS state would fork it).
   */
  private onWorkerMessage(ev: MessageEvent): void {
    const data = ev.data as { type?: string } | undefined
    const port = ev.ports[0]
    if (data?.type !== "push-wake" || !port) return
    void (async () => {
      const since = Date.now()
      if (me.value) this.follow()
      const deadline = since + 2500
      while (Date.now() < deadline && !(this.convs.lastIncoming && this.convs.lastIncoming.at >= since)) {
        await new Promise((r) => setTimeout(r, 100))
      }
      const last = this.convs.lastIncoming
      const recent = last && Date.now() - last.at < 60_000
      port.postMessage({ from: recent ? last.fromName : undefined, visible: document.visibilityState === "visible" })
    })()
  }

  private onOnline(): void {
    if (!me.value) return
    this.follow()
    this.outbox.kick()
  }

  private onOffline(): void {
    network.value = "offline"
    this.stop?.abort()
    this.stop = undefined
  }
}
