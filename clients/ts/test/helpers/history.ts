// What the history-verification tests against the real binary share: a
// fetch that rewrites the feed a member sees (a misbehaving server), an app
// that records what its client received, and a polling wait.
import type { SovereignClient, ClientEvent } from "../../src/client.js"
import { toHex, utf8 } from "../../src/bytes.js"
import type { HistoryMismatch } from "../../src/chain.js"
import type { FeedEventJSON } from "../../src/feed.js"

/** Rewrites the events of each feed answer (long-poll JSON) before the client sees them. */
export type Rewrite = (events: FeedEventJSON[]) => FeedEventJSON[]

/** A fetch that rewrites the events of each long-poll answer before the client sees them. */
export function misbehaving(rewrite: Rewrite): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init)
    const url = input instanceof Request ? input.url : String(input)
    if (!url.includes("/v1/sync") || !res.ok) return res
    const body = (await res.json()) as { events?: FeedEventJSON[] }
    body.events = rewrite(body.events ?? [])
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers })
  }
}

/** A member's app: runs the client's feed and records messages, joins and history mismatches. */
export class App {
  received: string[] = []
  joined = new Set<string>()
  mismatches: HistoryMismatch[] = []
  private ctrl = new AbortController()
  private loop?: Promise<void>
  constructor(readonly client: SovereignClient) {
    client.on((e: ClientEvent) => {
      if (e.result.kind === "application") this.received.push(utf8.decode(e.result.plaintext))
      if (e.result.kind === "joined") this.joined.add(toHex(e.result.groupId))
    })
    client.onHistoryMismatch((m) => void this.mismatches.push(m))
  }
  start(transport: "sse" | "longpoll" = "longpoll") {
    this.loop = this.client.run(this.ctrl.signal, { transport, pollTimeout: 2 }).catch(() => {})
  }
  async stop() {
    if (this.ctrl.signal.aborted) return
    this.ctrl.abort()
    await this.loop
    this.client.stop()
  }
}

/** Waits until cond holds, polling every 20 ms; throws after ms. */
export async function until(what: string, cond: () => boolean, ms = 60_000) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
