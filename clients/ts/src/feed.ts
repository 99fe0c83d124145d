// The device's feed: Server-Sent Events over fetch streaming (so the session
// token travels in the Authorization header), falling back to long-poll when
// streaming is unavailable (no ReadableStream body, a proxy that buffers or
// refuses event streams). Both resume after the last event the consumer
// finished processing, and duplicates by seq are dropped.
import { fromBase64 } from "./bytes.js"
import { ApiError, errorFrom } from "./errors.js"
import { parseSSE } from "./sse.js"
import type { components } from "./schema.js"

/** One feed event as the API sends it (JSON): the generated EventBody schema. */
export type FeedEventJSON = components["schemas"]["EventBody"]

/** One feed event, decoded. */
export interface FeedEvent {
  seq: number
  id: string
  groupId?: Uint8Array
  kind: "application" | "proposal" | "commit" | "welcome" | "notice" | string
  epoch?: number
  senderDeviceId?: string
  recipientDeviceId?: string
  serverTime: string
  payload: Uint8Array
  /** The group chain's previous hash (chained group events only; docs/verification.md). */
  prevHash?: Uint8Array
  /** This event's chain hash. */
  hash?: Uint8Array
}

export function decodeFeedEvent(e: FeedEventJSON): FeedEvent {
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new Error(`feed event with invalid seq ${e.seq}`)
  return {
    seq: e.seq,
    id: e.id,
    groupId: e.group_id ? fromBase64(e.group_id) : undefined,
    kind: e.kind,
    epoch: e.epoch,
    senderDeviceId: e.sender_device_id || undefined,
    recipientDeviceId: e.recipient_device_id || undefined,
    serverTime: e.server_time,
    payload: fromBase64(e.payload ?? ""),
    prevHash: e.prev_hash ? fromBase64(e.prev_hash) : undefined,
    hash: e.hash ? fromBase64(e.hash) : undefined,
  }
}

export type Transport = "sse" | "longpoll"

export interface FeedOptions {
  baseUrl: string
  /** The session token (a function, so a refreshed token is picked up on reconnect). */
  token: () => string | Promise<string>
  /** Resume after this seq (exclusive). */
  after: number
  /** "auto" (default): SSE, then long-poll after repeated failures or when streaming is unsupported. */
  transport?: "auto" | Transport
  /** Long-poll wait in seconds (≤ 60). */
  pollTimeout?: number
  /** Most events per long-poll answer. */
  pollLimit?: number
  fetch?: typeof fetch
  /** Told when the transport changes or a connection drops (for logs and UIs). */
  onStatus?: (s: { transport: Transport; connected: boolean; error?: unknown }) => void
  /** SSE failures in a row before auto mode switches to long-poll. */
  sseFailuresBeforeFallback?: number
  /**
   * An SSE connection that delivers nothing (not even the server's ping,
   * sent every 15 s by default) for this long is considered dead and
   * reopened; default 45 s.
   */
  idleTimeout?: number
  /** Backoff between reconnects, ms. */
  minBackoff?: number
  maxBackoff?: number
}

/** Raised by the feed for answers that retrying cannot fix (401, 403, 410). */
export class FeedClosedError extends Error {
  constructor(override readonly cause: ApiError) {
    super(`feed closed: ${cause.message}`)
    this.name = "FeedClosedError"
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(signal!.reason)
    }
    signal?.addEventListener("abort", onAbort, { once: true })
  })
}

function fatal(e: unknown): e is ApiError {
  return e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 410 || e.status === 422)
}

/**
 * Iterates over the feed forever (until signal aborts or a fatal answer).
 * The next connection resumes after the last event the consumer's loop body
 * finished with, so an event is never skipped; one delivered twice (after a
 * reconnect) is dropped by seq.
 */
export class Feed {
  private cursor: number
  private transport: Transport
  private readonly f: typeof fetch
  private sseFailures = 0

  constructor(private readonly o: FeedOptions) {
    this.cursor = o.after
    this.transport = o.transport === "longpoll" ? "longpoll" : "sse"
    this.f = o.fetch ?? globalThis.fetch.bind(globalThis)
  }

  /** The seq after which the next connection resumes. */
  get position(): number {
    return this.cursor
  }

  get currentTransport(): Transport {
    return this.transport
  }

  async *events(signal?: AbortSignal): AsyncGenerator<FeedEvent> {
    let backoff = this.o.minBackoff ?? 250
    const maxBackoff = this.o.maxBackoff ?? 15_000
    while (!signal?.aborted) {
      try {
        const source = this.transport === "sse" ? this.sse(signal) : this.poll(signal)
        for await (const ev of source) {
          backoff = this.o.minBackoff ?? 250
          if (ev.seq <= this.cursor) continue // duplicate after a reconnect
          yield ev
          this.cursor = ev.seq
        }
        // SSE ended cleanly (server shutdown, proxy timeout): reconnect.
      } catch (e) {
        if (signal?.aborted) return
        if (fatal(e)) throw new FeedClosedError(e)
        this.o.onStatus?.({ transport: this.transport, connected: false, error: e })
        if (this.transport === "sse" && this.o.transport !== "sse") {
          this.sseFailures++
          const unsupported = e instanceof StreamingUnsupported
          if (unsupported || this.sseFailures >= (this.o.sseFailuresBeforeFallback ?? 3)) {
            this.transport = "longpoll"
            this.o.onStatus?.({ transport: "longpoll", connected: false, error: e })
            continue
          }
        }
        let wait = backoff
        if (e instanceof ApiError && e.problem.retry_after) wait = e.problem.retry_after * 1000
        backoff = Math.min(backoff * 2, maxBackoff)
        try {
          await sleep(wait * (0.75 + Math.random() / 2), signal)
        } catch {
          return
        }
      }
    }
  }

  private async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    return { Authorization: `Bearer ${await this.o.token()}`, ...extra }
  }

  private async *sse(signal?: AbortSignal): AsyncGenerator<FeedEvent> {
    const url = new URL("v1/events", this.o.baseUrl.endsWith("/") ? this.o.baseUrl : this.o.baseUrl + "/")
    url.searchParams.set("after", String(this.cursor))
    const ctrl = new AbortController()
    const onAbort = () => ctrl.abort(signal?.reason)
    signal?.addEventListener("abort", onAbort, { once: true })
    try {
      const res = await this.f(url, {
        headers: await this.headers({ Accept: "text/event-stream", "Last-Event-ID": String(this.cursor) }),
        signal: ctrl.signal,
        cache: "no-store",
      })
      if (!res.ok) throw await errorFrom(res, "streamEvents")
      const ct = res.headers.get("Content-Type") ?? ""
      if (!ct.startsWith("text/event-stream") || !res.body) {
        throw new StreamingUnsupported(`event stream unavailable (Content-Type ${ct || "none"})`)
      }
      this.sseFailures = 0
      this.o.onStatus?.({ transport: "sse", connected: true })
      const idle = this.o.idleTimeout ?? 45_000
      let watchdog = setTimeout(() => ctrl.abort(new Error("event stream idle")), idle)
      try {
        for await (const m of parseSSE(res.body, ctrl.signal)) {
          clearTimeout(watchdog)
          watchdog = setTimeout(() => ctrl.abort(new Error("event stream idle")), idle)
          if (m.event !== "message") continue // ping and future event types
          const ev = decodeFeedEvent(JSON.parse(m.data) as FeedEventJSON)
          if (m.id && Number(m.id) !== ev.seq) throw new Error(`event id ${m.id} differs from seq ${ev.seq}`)
          yield ev
        }
      } finally {
        clearTimeout(watchdog)
      }
      if (ctrl.signal.aborted && !signal?.aborted) throw ctrl.signal.reason
    } finally {
      signal?.removeEventListener("abort", onAbort)
      ctrl.abort()
    }
  }

  private async *poll(signal?: AbortSignal): AsyncGenerator<FeedEvent> {
    let announced = false
    for (;;) {
      const url = new URL("v1/sync", this.o.baseUrl.endsWith("/") ? this.o.baseUrl : this.o.baseUrl + "/")
      url.searchParams.set("after", String(this.cursor))
      url.searchParams.set("timeout", String(this.o.pollTimeout ?? 30))
      url.searchParams.set("limit", String(this.o.pollLimit ?? 100))
      const res = await this.f(url, { headers: await this.headers({ Accept: "application/json" }), signal, cache: "no-store" })
      if (!res.ok) throw await errorFrom(res, "syncFeed")
      if (!announced) {
        this.o.onStatus?.({ transport: "longpoll", connected: true })
        announced = true
      }
      const body = (await res.json()) as components["schemas"]["SyncOutputBody"]
      for (const e of body.events ?? []) yield decodeFeedEvent(e)
    }
  }
}

class StreamingUnsupported extends Error {}

/** Fetches the events after `after` that are waiting now, without waiting for new ones. */
export async function pollOnce(
  o: Pick<FeedOptions, "baseUrl" | "token" | "fetch">,
  after: number,
  limit = 1000,
): Promise<{ events: FeedEvent[]; next: number; hasMore: boolean }> {
  const f = o.fetch ?? globalThis.fetch.bind(globalThis)
  const url = new URL("v1/sync", o.baseUrl.endsWith("/") ? o.baseUrl : o.baseUrl + "/")
  url.searchParams.set("after", String(after))
  url.searchParams.set("timeout", "0")
  url.searchParams.set("limit", String(limit))
  const res = await f(url, { headers: { Authorization: `Bearer ${await o.token()}`, Accept: "application/json" }, cache: "no-store" })
  if (!res.ok) throw await errorFrom(res, "syncFeed")
  const body = (await res.json()) as components["schemas"]["SyncOutputBody"]
  return { events: (body.events ?? []).map(decodeFeedEvent), next: body.next, hasMore: body.has_more }
}
