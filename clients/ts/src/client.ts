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
//
// The class is built in three layers, one file each: client-base.ts (state,
// session, passkey ceremonies), client-groups.ts (key packages, groups,
// people and devices) and this file (messages, attachments, the feed).
import { fromBase64, fromHex, toBase64, toBase64url, utf8 } from "./bytes.js"
import { ApiError } from "./errors.js"
import { Feed, pollOnce, type FeedEvent, type Transport } from "./feed.js"
import { decodeHead, encodeHead, isChained, type HistoryMismatch } from "./chain.js"
import type { SafetyCode } from "./safety.js"
import { MlsClient, MlsError } from "./mls.js"
import { FeedClosedError } from "./feed.js"
import type { DeviceAlarm, DeviceCheck } from "./attest-verifier.js"
import { ClientError } from "./device-checks.js"
import { downloadAttachment, downloadAttachmentBlob, downloadAttachmentChunks, uploadAttachment, type AttachmentPointer, type AttachmentSource, type AttachmentTransport, type DownloadOptions, type UploadOptions } from "./attachments.js"
import type { SovereignClientOptions, ResyncResult, ClientEvent, Listener, HistoryListener, DeviceAlarmListener, Schemas, PendingRemoval, SendOptions } from "./client-types.js"
import { problemOf, ok, removedDeviceOf, isKeyPackagesLow, newDeviceNotice } from "./client-util.js"
import { GroupsClient } from "./client-groups.js"

export type { SovereignClientOptions, ResyncResult, DirectoryUser, SignInLocation, NewDeviceNotice, ClientEvent, Listener, HistoryListener, DeviceAlarmListener, Schemas, SendOptions, CommitResult } from "./client-types.js"
export { newDeviceNotice } from "./client-util.js"

/** The Sovereign client of one device: open it with SovereignClient.open. */
export class SovereignClient extends GroupsClient {
  private constructor(o: SovereignClientOptions) {
    super(o)
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
