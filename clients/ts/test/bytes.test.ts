import { test } from "node:test"
import assert from "node:assert/strict"
import { randomBytes } from "node:crypto"
import { fromBase64, toBase64, toBase64url, toHex, fromHex, equal } from "../src/bytes.js"
import { ClientStore, EncryptedKeyValueStore, MemoryKeyValueStore } from "../src/storage.js"
import { FileKeyValueStore } from "../src/node-store.js"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

test("base64 and base64url agree with Node's Buffer for every length", () => {
  for (let n = 0; n < 70; n++) {
    const b = new Uint8Array(randomBytes(n))
    assert.equal(toBase64(b), Buffer.from(b).toString("base64"))
    assert.equal(toBase64url(b), Buffer.from(b).toString("base64url"))
    assert.deepEqual(fromBase64(toBase64(b)), b)
    assert.deepEqual(fromBase64(toBase64url(b)), b)
    assert.deepEqual(fromHex(toHex(b)), b)
  }
  assert.throws(() => fromBase64("a"), /length/)
  assert.throws(() => fromBase64("ab!d"), /character/)
  assert.throws(() => fromBase64("ab==="), /length/)
  assert.throws(() => fromHex("abc"))
  assert.ok(equal(Uint8Array.of(1, 2), Uint8Array.of(1, 2)))
  assert.ok(!equal(Uint8Array.of(1, 2), Uint8Array.of(1, 3)))
})

test("encrypted store: values sealed, bound to their key, tampering detected", async () => {
  const inner = new MemoryKeyValueStore()
  const key = new Uint8Array(randomBytes(32))
  const s = new ClientStore(new EncryptedKeyValueStore(inner, key))
  const secret = new Uint8Array(Buffer.from("private key material 0123456789"))
  await s.putGroup({ groupId: Uint8Array.of(1, 2), state: secret, lastSeq: 7 })
  await s.putCursor(42)
  assert.deepEqual(await s.getGroup(Uint8Array.of(1, 2)), { groupId: Uint8Array.of(1, 2), state: secret, lastSeq: 7 })
  assert.equal(await s.getCursor(), 42)
  for (const v of inner.rawValues()) assert.ok(!Buffer.from(v).includes(Buffer.from("private key material")))
  // Swap two values between keys: decryption fails.
  await inner.put("cursor", (await inner.get("group/0102"))!)
  await assert.rejects(s.getCursor())
  const wrong = new ClientStore(new EncryptedKeyValueStore(inner, new Uint8Array(32)))
  await assert.rejects(wrong.getGroup(Uint8Array.of(1, 2)))
  assert.throws(() => new EncryptedKeyValueStore(inner, new Uint8Array(16)))
})

test("file store: put, get, keys, delete, survives a new instance", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sovereign-kv-"))
  try {
    const a = new ClientStore(new FileKeyValueStore(dir))
    await a.putSession({ token: "t", userId: "u", deviceId: "d", username: "alice" })
    await a.putGroup({ groupId: Uint8Array.of(0xab), state: Uint8Array.of(1), lastSeq: 3 })
    const b = new ClientStore(new FileKeyValueStore(dir))
    assert.equal((await b.getSession())!.username, "alice")
    assert.deepEqual(await b.listGroups(), ["ab"])
    await b.deleteGroup(Uint8Array.of(0xab))
    assert.equal(await a.getGroup(Uint8Array.of(0xab)), undefined)
    assert.equal(await a.getCursor(), 0)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
