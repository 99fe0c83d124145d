// The feed transport against a small local HTTP server that speaks the
// same wire format as Sovereign's /v1/events and /v1/sync. (The end-to-end
// test runs the same code against the real server.)
import { test } from "node:test"
import assert from "node:assert/strict"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { parseSSE } from "../src/sse.js"
import { Feed, FeedClosedError, type FeedEventJSON } from "../src/feed.js"

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder()
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(typeof x === "string" ? enc.encode(x) : x)
      c.close()
    },
  })
}

async function collect(chunks: (string | Uint8Array)[]) {
  const out = []
  for await (const m of parseSSE(streamOf(chunks))) out.push(m)
  return out
}

test("SSE parser: split chunks, CR/LF/CRLF, comments, multi-line data, ids, retry", async () => {
  const text = "\ufeff: comment\r\nevent: ping\r\ndata: {}\r\n\r\nid: 7\ndata: a\ndata:b\n\nevent: message\rid: 8\rretry: 1500\rdata: c\r\rdata: no end"
  const whole = await collect([text])
  assert.deepEqual(whole, [
    { event: "ping", data: "{}", id: "" },
    { event: "message", data: "a\nb", id: "7" },
    { event: "message", data: "c", id: "8", retry: 1500 },
  ])
  // Same bytes cut at every position, including inside "☃" (3 bytes) and between CR and LF.
  const bytes = new TextEncoder().encode(text + "\n\ndata: ☃\r\n\r\n")
  const expect = [...whole, { event: "message", data: "no end", id: "8" }, { event: "message", data: "☃", id: "8" }]
  for (let cut = 1; cut < bytes.length; cut += 3) {
    assert.deepEqual(await collect([bytes.slice(0, cut), bytes.slice(cut)]), expect, `cut at ${cut}`)
  }
  assert.deepEqual(await collect([...bytes].map((b) => Uint8Array.of(b))), expect, "one byte per chunk")
  assert.deepEqual(await collect(["data: x\r", "\n", "\r\n"]), [{ event: "message", data: "x", id: "" }])
})

// A fake feed: events 1..n, SSE that drops the connection after `dropAfter`
// events, long-poll that returns up to `limit`.
function fakeServer(opts: { total: number; dropAfter: number; sse: "ok" | "404" | "buffered"; gone?: boolean }) {
  const log: string[] = []
  const ev = (seq: number): FeedEventJSON => ({
    seq: seq * 2, // gaps, like a global sequence
    id: `id-${seq}`,
    kind: "application",
    group_id: "Z3JvdXA",
    epoch: 1,
    sender_device_id: "d",
    server_time: "2026-11-29T10:00:00.000000Z",
    payload: Buffer.from(`msg ${seq}`).toString("base64"),
  })
  const all = Array.from({ length: opts.total }, (_, i) => ev(i + 1))
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url!, "http://x")
    const after = Number(u.searchParams.get("after") ?? 0)
    log.push(`${u.pathname} after=${after} auth=${req.headers.authorization}`)
    if (req.headers.authorization !== "Bearer tok") {
      res.writeHead(401, { "Content-Type": "application/problem+json" }).end('{"status":401,"code":"unauthorized"}')
      return
    }
    if (opts.gone) {
      res.writeHead(410, { "Content-Type": "application/problem+json" })
      res.end(JSON.stringify({ status: 410, code: "cursor_expired", resync: { resume_after: 9, groups: [] } }))
      return
    }
    if (u.pathname === "/v1/events") {
      if (opts.sse === "404") return void res.writeHead(404).end()
      if (opts.sse === "buffered") return void res.writeHead(200, { "Content-Type": "application/json" }).end("{}")
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" })
      res.write("event: ping\ndata: {\"time\":\"now\"}\n\n")
      // Replays one event at or before the cursor to prove the client dedupes.
      const pending = all.filter((e) => e.seq >= after).slice(0, opts.dropAfter + 1)
      for (const e of pending) res.write(`id: ${e.seq}\nevent: message\ndata: ${JSON.stringify(e)}\n\n`)
      if (pending.at(-1)?.seq === all.at(-1)?.seq) return // keep open at the end
      res.end()
      return
    }
    if (u.pathname === "/v1/sync") {
      const limit = Number(u.searchParams.get("limit"))
      const events = all.filter((e) => e.seq > after).slice(0, limit)
      const body = { events, next: events.at(-1)?.seq ?? after, has_more: all.filter((e) => e.seq > after).length > limit }
      if (events.length === 0) {
        setTimeout(() => res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(body)), 50)
        return
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(body))
      return
    }
    res.writeHead(404).end()
  })
  return { srv, log }
}

async function listen(srv: ReturnType<typeof createServer>) {
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r))
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`
}

async function run(feed: Feed, n: number) {
  const ctrl = new AbortController()
  const seqs: number[] = []
  for await (const e of feed.events(ctrl.signal)) {
    seqs.push(e.seq)
    assert.equal(Buffer.from(e.payload).toString(), `msg ${e.seq / 2}`)
    if (seqs.length === n) break
  }
  return seqs
}

test("feed over SSE: reconnects after drops, resumes after the last processed seq, no duplicates", async () => {
  const { srv, log } = fakeServer({ total: 10, dropAfter: 3, sse: "ok" })
  const base = await listen(srv)
  try {
    const statuses: string[] = []
    const feed = new Feed({ baseUrl: base, token: () => "tok", after: 4, minBackoff: 5, onStatus: (s) => statuses.push(`${s.transport}:${s.connected}`) })
    const seqs = await run(feed, 8)
    assert.deepEqual(seqs, [6, 8, 10, 12, 14, 16, 18, 20])
    assert.equal(feed.currentTransport, "sse")
    assert.ok(log.every((l) => l.startsWith("/v1/events") && l.endsWith("auth=Bearer tok")))
    assert.deepEqual(log.map((l) => l.split(" ")[1]), ["after=4", "after=10", "after=16"])
  } finally {
    srv.close()
  }
})

test("feed falls back to long-poll when the event stream is refused or buffered", async () => {
  for (const mode of ["404", "buffered"] as const) {
    const { srv, log } = fakeServer({ total: 5, dropAfter: 0, sse: mode })
    const base = await listen(srv)
    try {
      const feed = new Feed({ baseUrl: base, token: async () => "tok", after: 0, pollLimit: 2, minBackoff: 5, sseFailuresBeforeFallback: 2 })
      assert.deepEqual(await run(feed, 5), [2, 4, 6, 8, 10])
      assert.equal(feed.currentTransport, "longpoll")
      assert.ok(log.some((l) => l.startsWith("/v1/sync after=4")))
    } finally {
      srv.close()
    }
  }
})

test("feed stops on 401 and 410 with the problem", async () => {
  const { srv } = fakeServer({ total: 1, dropAfter: 0, sse: "ok", gone: true })
  const base = await listen(srv)
  try {
    const gone = new Feed({ baseUrl: base, token: () => "tok", after: 1 })
    await assert.rejects(run(gone, 1), (e: unknown) => e instanceof FeedClosedError && e.cause.status === 410 && e.cause.problem.resync?.resume_after === 9)
    const unauth = new Feed({ baseUrl: base, token: () => "bad", after: 0, transport: "longpoll" })
    await assert.rejects(run(unauth, 1), (e: unknown) => e instanceof FeedClosedError && e.cause.status === 401)
  } finally {
    srv.close()
  }
})

test("a silent SSE connection is dropped after the idle timeout and reopened", async () => {
  let n = 0
  const srv = createServer((req, res) => {
    n++
    res.writeHead(200, { "Content-Type": "text/event-stream" })
    res.flushHeaders()
    if (n === 1) return // says nothing, never ends
    const e: FeedEventJSON = { seq: 5, id: "x", kind: "notice", server_time: "t", payload: Buffer.from("{}").toString("base64") }
    res.write(`id: 5\nevent: message\ndata: ${JSON.stringify(e)}\n\n`)
  })
  const base = await listen(srv)
  try {
    const feed = new Feed({ baseUrl: base, token: () => "tok", after: 0, idleTimeout: 200, minBackoff: 5, maxBackoff: 10 })
    const ctrl = new AbortController()
    const t0 = Date.now()
    for await (const e of feed.events(ctrl.signal)) {
      assert.equal(e.seq, 5)
      break
    }
    assert.equal(n, 2)
    assert.ok(Date.now() - t0 >= 190)
  } finally {
    srv.closeAllConnections()
    srv.close()
  }
})
