// The offline queue. A message is stored (sealed) and shown at once as
// "waiting"; the queue sends messages in order whenever the network is up,
// each with its envelope id as Idempotency-Key, so a retry after a lost
// answer is recognised by the server and never stored twice. A refusal
// the server will repeat (not a member any more, too large) marks the
// message failed; the person can retry it.
import { ApiError, fromBase64url, type AttachmentPointer, type SovereignClient } from "@sovereign-im/client"
import type { AppDB, Sealer } from "../storage/db"
import type { Conversations } from "./conversations"
import { encodeEnvelope, type Envelope } from "./envelope"
import { isNetworkError, plainError } from "./errors"
import { me, network, type Message } from "./state"
import { attachmentLabel } from "./attachments"

interface Queued {
  id: string
  conv: string
  text: string
  t: number
  /** An uploaded attachment to send (its pointer goes inside the MLS message). */
  att?: AttachmentPointer
  voice?: boolean
}

export class Outbox {
  private running?: Promise<void>
  private retryTimer?: ReturnType<typeof setTimeout>

  constructor(
    private readonly db: AppDB,
    private readonly sealer: Sealer,
    private readonly convs: Conversations,
    private readonly client: () => SovereignClient,
  ) {}

  /** Queues a text message and starts sending. */
  async sendText(conv: string, text: string): Promise<void> {
    const q: Queued = { id: crypto.randomUUID(), conv, text, t: Date.now() }
    await this.enqueue(q)
  }

  /** Queues the message of an uploaded attachment (id: the message shown while it uploaded). */
  async sendAttachment(conv: string, id: string, time: number, att: AttachmentPointer, voice?: boolean): Promise<void> {
    await this.enqueue({ id, conv, text: att.name ?? "", t: time, att, ...(voice ? { voice } : {}) })
  }

  async retry(m: Message): Promise<void> {
    if (m.kind === "attachment" && !m.attachment) return // never uploaded: core/attachments.ts retries the upload
    await this.enqueue({ id: m.id, conv: m.conv, text: m.text, t: m.t, ...(m.attachment ? { att: m.attachment, voice: m.voice } : {}) })
  }

  private async enqueue(q: Queued): Promise<void> {
    await this.db.outbox.put({ id: q.id, t: q.t, v: await this.sealer.sealJSON("out/" + q.id, q) })
    await this.convs.putMessage(this.message(q, navigator.onLine ? "sending" : "queued"), { replace: true })
    const c = this.convs.conv(q.conv)
    if (c) await this.convs.saveConv({ ...c, lastTime: q.t, lastText: q.att ? attachmentLabel(q.att, q.voice) : q.text })
    this.kick()
  }

  private message(q: Queued, state: Message["state"], error?: string): Message {
    const m = me.value!
    const att = q.att ? { kind: "attachment" as const, attachment: q.att, ...(q.voice ? { voice: true } : {}) } : { kind: "text" as const }
    return { id: q.id, conv: q.conv, t: q.t, ...att, text: q.text, fromUser: m.userId, fromName: m.username, fromDevice: m.deviceId, mine: true, state, error }
  }

  /** Sends what is queued, unless a run is already going. */
  kick(): void {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer)
      this.retryTimer = undefined
    }
    this.running ??= this.drain().finally(() => (this.running = undefined))
  }

  private later(ms: number): void {
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined
      this.kick()
    }, ms)
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (!navigator.onLine || network.value === "offline") return // the online event kicks again
      const row = await this.db.outbox.orderBy("t").first()
      if (!row) return
      const q = await this.sealer.openJSON<Queued>("out/" + row.id, row.v)
      await this.convs.putMessage(this.message(q, "sending"), { replace: true })
      try {
        const env: Envelope = q.att
          ? { type: "attachment", id: q.id, t: q.t, file: q.att, ...(q.voice ? { voice: true } : {}) }
          : { type: "text", id: q.id, t: q.t, text: q.text }
        await this.client().send(fromBase64url(q.conv), encodeEnvelope(env), { idempotencyKey: q.id })
        await this.db.outbox.delete(q.id)
        await this.convs.putMessage(this.message(q, "sent"), { replace: true })
      } catch (e) {
        if (isNetworkError(e)) {
          await this.convs.putMessage(this.message(q, "queued"), { replace: true })
          this.later(3000)
          return
        }
        if (e instanceof ApiError && (e.status === 429 || e.status >= 500)) {
          await this.convs.putMessage(this.message(q, "queued"), { replace: true })
          this.later((e.problem.retry_after ?? 5) * 1000)
          return
        }
        await this.db.outbox.delete(q.id)
        await this.convs.putMessage(this.message(q, "failed", plainError(e)), { replace: true })
      }
    }
  }

  /** Shows queued messages as waiting again after a restart. */
  async restore(): Promise<void> {
    for (const row of await this.db.outbox.toArray()) {
      const q = await this.sealer.openJSON<Queued>("out/" + row.id, row.v)
      await this.convs.putMessage(this.message(q, "queued"), { replace: true })
    }
  }
}
