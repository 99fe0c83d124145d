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
