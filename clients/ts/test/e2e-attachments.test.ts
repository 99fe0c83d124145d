// Attachments end to end through the real binary: Alice encrypts a 5 MiB
// image on her device, uploads it in parts (one part's connection fails and
// the upload resumes), sends the pointer inside an MLS message; Bob gets the
// message, downloads, verifies the digest and decrypts. The server's
// attachment files hold only ciphertext (positive control: the plaintext
// marker is in the plaintext).
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { ServerProcess } from "./helpers/server.js"
import { SovereignClient, type ClientEvent } from "../src/client.js"
import { MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { equal, utf8 } from "../src/bytes.js"
import { decryptAttachment, encryptAttachment, padmeLength, type AttachmentPointer } from "../src/attachments.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

async function until(what: string, cond: () => boolean, ms = 60_000) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test("attachment format: round trip, padding, tamper detection", async () => {
  for (const n of [0, 1, 65535, 65536, 65537, 200_000]) {
    const data = randomBytes(n)
    const { ciphertext, key, digest } = await encryptAttachment(data)
    assert.ok(ciphertext.length >= padmeLength(n + 1))
    const p = { key: Buffer.from(key).toString("base64"), digest: Buffer.from(digest).toString("base64") }
    assert.ok(equal(await decryptAttachment(ciphertext, p), data), `round trip of ${n} bytes`)
    if (n > 0) {
      const bad = ciphertext.slice()
      bad[3] = (bad[3] ?? 0) ^ 1
      await assert.rejects(decryptAttachment(bad, p), /digest/)
    }
  }
})

test("a 5 MiB image between two clients; the server stores ciphertext only", { timeout: 180_000 }, async () => {
  const srv = await ServerProcess.start()
  cleanups.push(() => srv.cleanup())
  let failNext = true
  let puts = 0
  const flaky: typeof fetch = async (input, init) => {
    if (init?.method === "PUT" && ++puts === 2 && failNext) {
      failNext = false
      throw new TypeError("network dropped")
    }
    return fetch(input, init)
  }
  const open = (f?: typeof fetch) => SovereignClient.open({
    baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }), fetch: f,
  })
  const alice = await open(flaky)
  const bob = await open()
  await alice.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "laptop" })
  await bob.register({ inviteCode: await srv.invite(), username: "bob", displayName: "Bob", deviceName: "phone" })
  await bob.replenishKeyPackages()
  const bobEvents: ClientEvent[] = []
  bob.on((e) => void bobEvents.push(e))
  const ctrl = new AbortController()
  const loop = bob.run(ctrl.signal, { transport: "longpoll", pollTimeout: 5 })
  cleanups.push(async () => { ctrl.abort(); await loop.catch(() => {}) })

  const gid = await alice.createGroup()
  await alice.addMembers(gid, ["bob"])

  const marker = utf8.encode("PLAINTEXT-MARKER-" + randomBytes(8).toString("hex"))
  const image = new Uint8Array(5 << 20)
  image.set(randomBytes(image.length))
  for (let at = 0; at + marker.length < image.length; at += 256 * 1024) image.set(marker, at)
  const progress: number[] = []
  const t0 = performance.now()
  const ptr = await alice.uploadAttachment(gid, image, { mime: "image/jpeg", name: "photo.jpg", onProgress: (s) => progress.push(s) })
  const upMs = performance.now() - t0
  assert.equal(failNext, false, "one PUT failed and the upload resumed")
  assert.equal(progress.at(-1), ptr.encryptedSize)
  await alice.send(gid, JSON.stringify({ type: "attachment", attachment: ptr }))

  await until("bob gets the pointer", () => bobEvents.some((e) => e.result.kind === "application"))
  const ev = bobEvents.find((e) => e.result.kind === "application")!
  const got = JSON.parse(utf8.decode((ev.result as { plaintext: Uint8Array }).plaintext)) as { attachment: AttachmentPointer }
  const t1 = performance.now()
  const bytes = await bob.downloadAttachment(got.attachment)
  const downMs = performance.now() - t1
  assert.ok(equal(bytes, image), "Bob decrypts exactly the image")
  console.log(`5 MiB attachment: upload ${(5 / (upMs / 1000)).toFixed(1)} MiB/s, download+verify ${(5 / (downMs / 1000)).toFixed(1)} MiB/s`)

  // On disk: one file of the ciphertext's size, without the marker.
  const dir = join(srv.dataDir, "attachments")
  const files = await readdir(dir)
  assert.deepEqual(files, [ptr.id])
  const disk = await readFile(join(dir, ptr.id))
  assert.equal(disk.length, ptr.encryptedSize)
  assert.ok(Buffer.from(image).includes(Buffer.from(marker)), "positive control: the marker is in the plaintext")
  assert.ok(!disk.includes(Buffer.from(marker)), "the marker is not on the server's disk")
})

test("streamed format: byte-identical to the whole-buffer format, tamper and truncation refused", async () => {
  const { downloadAttachmentChunks } = await import("../src/attachments.js")
  for (const n of [0, 1, 65535, 65536, 65537, 200_000, 3 * 65536]) {
    const data = randomBytes(n)
    if (n === 3 * 65536) data.fill(0, 65536) // trailing zeros spanning chunks are data, not padding
    // Serve the ciphertext the streamed upload produced from a fake transport's PUTs.
    const stored: Buffer[] = []
    const f: typeof fetch = async (input, init) => {
      const url = String(input)
      if (init?.method === "POST") return new Response(JSON.stringify({ id: "a1" }), { status: 201 })
      if (init?.method === "PUT") {
        stored.push(Buffer.from(init.body as Uint8Array))
        const offset = stored.reduce((s, b) => s + b.length, 0)
        return new Response(JSON.stringify({ offset, complete: false }), { status: 200 })
      }
      const all = Buffer.concat(stored)
      const from = Number(/bytes=(\d+)-/.exec(new Headers(init?.headers).get("Range") ?? "")?.[1] ?? 0)
      void url
      return new Response(all.subarray(from), { status: from ? 206 : 200 })
    }
    const t = { baseUrl: "http://x", token: () => "t", fetch: f }
    const { uploadAttachment } = await import("../src/attachments.js")
    const ptr = await uploadAttachment(t, "g", new Blob([data]), { partBytes: 100_000 })
    const ct = new Uint8Array(Buffer.concat(stored))
    assert.equal(ct.length, ptr.encryptedSize)
    assert.ok(equal(await decryptAttachment(ct, ptr), data), `the whole-buffer decryptor reads the streamed upload of ${n} bytes`)
    const out: Uint8Array[] = []
    for await (const c of downloadAttachmentChunks(t, ptr)) out.push(c)
    assert.ok(equal(new Uint8Array(Buffer.concat(out)), data), `streamed round trip of ${n} bytes`)
    if (n > 0) {
      stored.splice(0, stored.length, Buffer.from(ct))
      stored[0]![ct.length - 1]! ^= 1
      await assert.rejects(async () => { for await (const _ of downloadAttachmentChunks(t, ptr)) void _ }, /failed authentication/)
      stored.splice(0, stored.length, Buffer.from(ct.subarray(0, ct.length - 16)))
      await assert.rejects(async () => { for await (const _ of downloadAttachmentChunks(t, { ...ptr, encryptedSize: ct.length - 16 })) void _ }, /authentication|shorter|digest/)
      stored.splice(0, stored.length, Buffer.from(ct))
      await assert.rejects(async () => { for await (const _ of downloadAttachmentChunks(t, { ...ptr, digest: Buffer.alloc(32).toString("base64") })) void _ }, /digest/)
    }
  }
})

/**
 * Runs f while sampling the live memory (a full GC before each sample, so
 * garbage not yet collected does not count): ArrayBuffers (where file bytes
 * live) and RSS; returns the peaks above the start.
 */
async function peakMemory(f: () => Promise<void>): Promise<{ arrayBuffers: number; rss: number }> {
  const { setFlagsFromString } = await import("node:v8")
  const { runInNewContext } = await import("node:vm")
  setFlagsFromString("--expose-gc")
  const gc = runInNewContext("gc") as () => void
  gc()
  const base = process.memoryUsage()
  let ab = 0
  let rss = 0
  const sample = () => {
    gc()
    const m = process.memoryUsage()
    ab = Math.max(ab, m.arrayBuffers - base.arrayBuffers)
    rss = Math.max(rss, m.rss - base.rss)
  }
  const timer = setInterval(sample, 20)
  try {
    await f()
  } finally {
    clearInterval(timer)
    sample()
  }
  return { arrayBuffers: ab, rss }
}

test("a 50 MiB file streams up and down in bounded memory (before: whole-buffer)", { timeout: 600_000 }, async () => {
  const { openAsBlob } = await import("node:fs")
  const { writeFile, mkdtemp, rm } = await import("node:fs/promises")
  const { createHash } = await import("node:crypto")
  const { downloadAttachmentChunks, putBytes } = await import("../src/attachments.js")
  const srv = await ServerProcess.start()
  cleanups.push(() => srv.cleanup())
  const alice = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }) })
  await alice.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "laptop" })
  const gid = await alice.createGroup()
  const dir = await mkdtemp(join((await import("node:os")).tmpdir(), "att-"))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, "big.bin")
  const size = 50 << 20
  let wantHex: string
  {
    const b = Buffer.alloc(size)
    for (let at = 0; at < size; at += 1 << 20) randomBytes(1 << 20).copy(b, at)
    await writeFile(path, b)
    wantHex = createHash("sha256").update(b).digest("hex")
  }
  const MiB = 1 << 20

  // After (measured first, from a clean start): a file-backed Blob in, chunks out.
  let ptr!: AttachmentPointer
  const after = await peakMemory(async () => {
    ptr = await alice.uploadAttachment(gid, await openAsBlob(path))
    const h = createHash("sha256")
    for await (const c of alice.downloadAttachmentChunks(ptr)) h.update(c)
    assert.equal(h.digest("hex"), wantHex, "the streamed download decrypts exactly the file")
  })
  // Before (the old code path): the whole file, the whole ciphertext and the whole download in memory.
  let oldPtr!: AttachmentPointer
  const before = await peakMemory(async () => {
    const data = new Uint8Array(await (await openAsBlob(path)).arrayBuffer())
    const { ciphertext, key, digest } = await encryptAttachment(data)
    const r = await alice.api.POST("/v1/attachments", { body: { group_id: Buffer.from(gid).toString("base64url"), size: ciphertext.length } })
    const id = (r.data as { id: string }).id
    await putBytes({ baseUrl: srv.url, token: () => alice.token! }, id, ciphertext)
    oldPtr = { id, key: Buffer.from(key).toString("base64"), digest: Buffer.from(digest).toString("base64"), size, encryptedSize: ciphertext.length }
    const res = await fetch(`${srv.url}/v1/attachments/${id}`, { headers: { Authorization: `Bearer ${alice.token}` } })
    const pt = await decryptAttachment(new Uint8Array(await res.arrayBuffer()), oldPtr)
    assert.equal(createHash("sha256").update(pt).digest("hex"), wantHex)
  })

  assert.equal(ptr.size, size)
  console.log(`50 MiB attachment, SDK peak memory above start: whole-buffer ArrayBuffers ${(before.arrayBuffers / MiB).toFixed(1)} MiB, RSS ${(before.rss / MiB).toFixed(1)} MiB; ` +
    `streamed ArrayBuffers ${(after.arrayBuffers / MiB).toFixed(1)} MiB, RSS ${(after.rss / MiB).toFixed(1)} MiB ` +
    `(live memory: a full GC before each sample; throughput is measured by sovereign-bench attachments)`)
  assert.ok(before.arrayBuffers > 100 * MiB, "positive control: the whole-buffer path holds the file several times over")
  assert.ok(after.arrayBuffers < 16 * MiB, `the streamed path holds ${after.arrayBuffers} bytes of buffers at its peak`)
})
