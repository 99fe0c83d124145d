// Three in-process MLS clients exchanging bytes through a tiny in-memory
// "server" that assigns sequence numbers and enforces one commit per epoch,
// like Sovereign does. No network: this proves the MLS layer alone.
import { test } from "node:test"
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import { decodeMlsMessage } from "ts-mls"
import {
  MlsClient, type PendingCommit, type Received, parseKeyPackage, LAST_RESORT_EXTENSION, DEFAULT_SUITE, deviceIdentity,
  isPaddedLength, paddedLength, AEAD_TAG_BYTES,
} from "../src/mls.js"
import { ClientStore, MemoryKeyValueStore } from "../src/storage.js"
import { utf8, toHex } from "../src/bytes.js"

interface Ev { seq: number; kind: string; groupId?: Uint8Array; senderDeviceId?: string; payload: Uint8Array; to?: string }

// A stand-in for the delivery service: a log of events, one epoch counter
// per group, a 409 for a commit in a stale epoch.
class Log {
  events: Ev[] = []
  epoch = new Map<string, number>()
  members = new Map<string, Set<string>>()
  private seq = 0
  createGroup(gid: Uint8Array, creator: string) {
    this.epoch.set(toHex(gid), 0)
    this.members.set(toHex(gid), new Set([creator]))
  }
  commit(sender: string, p: PendingCommit): number | "conflict" {
    const g = toHex(p.groupId)
    if (this.epoch.get(g) !== p.epoch) return "conflict"
    this.epoch.set(g, p.epoch + 1)
    const seq = ++this.seq
    this.events.push({ seq, kind: "commit", groupId: p.groupId, senderDeviceId: sender, payload: p.commit })
    const ms = this.members.get(g)!
    for (const d of p.addedDevices) {
      ms.add(d)
      this.events.push({ seq: ++this.seq, kind: "welcome", senderDeviceId: sender, payload: p.welcome!, to: d })
    }
    for (const d of p.removedDevices) ms.delete(d)
    // A removed device still gets the commit that removes it (it was a member at seq).
    this.events[this.events.findIndex((e) => e.seq === seq)]!.to = undefined
    ;(this.events.find((e) => e.seq === seq) as Ev & { members?: string[] }).members = [...ms, ...p.removedDevices]
    return seq
  }
  send(sender: string, gid: Uint8Array, payload: Uint8Array): number {
    const seq = ++this.seq
    ;(this.events as (Ev & { members?: string[] })[]).push({
      seq, kind: "application", groupId: gid, senderDeviceId: sender, payload, members: [...this.members.get(toHex(gid))!],
    })
    return seq
  }
  feed(device: string, after: number): Ev[] {
    return (this.events as (Ev & { members?: string[] })[]).filter(
      (e) => e.seq > after && (e.to === device || (e.to === undefined && e.members?.includes(device))),
    )
  }
}

class Peer {
  cursor = 0
  got: string[] = []
  constructor(readonly name: string, readonly id: string, public mls: MlsClient, readonly kv: MemoryKeyValueStore) {}
  static async make(name: string) {
    const kv = new MemoryKeyValueStore()
    const id = randomUUID()
    return new Peer(name, id, await MlsClient.open(id, new ClientStore(kv)), kv)
  }
  async sync(log: Log): Promise<Received[]> {
    const out: Received[] = []
    for (const e of log.feed(this.id, this.cursor)) {
      const r = await this.mls.receive(e)
      if (r.kind === "application") this.got.push(utf8.decode(r.plaintext))
      out.push(r)
      this.cursor = e.seq
    }
    return out
  }
}

async function setup() {
  const log = new Log()
  const [alice, bob, carol] = await Promise.all([Peer.make("alice"), Peer.make("bob"), Peer.make("carol")])
  const { groupId } = await alice.mls.createGroup()
  log.createGroup(groupId, alice.id)
  const [bobKp] = await bob.mls.generateKeyPackages(3, { lastResort: true })
  const [carolKp] = await carol.mls.generateKeyPackages(2)
  const p = await alice.mls.prepareCommit(groupId, { add: [bobKp!.keyPackage, carolKp!.keyPackage] })
  assert.equal(await alice.mls.epoch(groupId), 0, "nothing applied before the server accepts")
  assert.notEqual(log.commit(alice.id, p), "conflict")
  await alice.mls.applyCommit(p)
  assert.equal(await alice.mls.epoch(groupId), 1)
  return { log, alice, bob, carol, groupId, bobKp: bobKp!, carolKp: carolKp! }
}

test("key packages: identity, last-resort extension, refs stored", async () => {
  const p = await Peer.make("x")
  const kps = await p.mls.generateKeyPackages(3, { lastResort: true })
  assert.equal(kps.length, 3)
  assert.deepEqual(kps.map((k) => k.lastResort), [true, false, false])
  for (const k of kps) {
    const { keyPackage, deviceId } = parseKeyPackage(k.keyPackage, DEFAULT_SUITE)
    assert.equal(deviceId, p.id)
    assert.ok(keyPackage.leafNode.capabilities.extensions.includes(LAST_RESORT_EXTENSION))
    const has = keyPackage.extensions.some((e) => e.extensionType === LAST_RESORT_EXTENSION && e.extensionData.length === 0)
    assert.equal(has, k.lastResort)
    const rec = await p.mls.store.getKeyPackage(k.ref)
    assert.ok(rec, "private half stored")
    assert.equal(rec.lastResort, k.lastResort)
  }
  assert.equal(new Set(kps.map((k) => toHex(k.ref))).size, 3)
  assert.throws(() => deviceIdentity("not-a-uuid"))
  const other = await Peer.make("y")
  const [okp] = await other.mls.generateKeyPackages(1)
  assert.equal(parseKeyPackage(okp!.keyPackage, DEFAULT_SUITE).deviceId, other.id)
  assert.throws(() => parseKeyPackage(okp!.keyPackage.subarray(0, 50), DEFAULT_SUITE))
  assert.throws(() => parseKeyPackage(new Uint8Array([...okp!.keyPackage, 0]), DEFAULT_SUITE), /trailing/)
})

test("three clients: join by welcome, messages both ways, own messages skipped, duplicates dropped", async () => {
  const { log, alice, bob, carol, groupId, bobKp, carolKp } = await setup()
  const joined = await bob.sync(log)
  assert.deepEqual(joined.map((r) => r.kind), ["ignored", "joined"]) // bob is not a member at the commit's seq
  assert.equal((await carol.sync(log)).at(-1)!.kind, "joined")
  assert.ok(await bob.mls.store.getKeyPackage(bobKp.ref), "last-resort key package is kept after joining")
  assert.equal(await carol.mls.store.getKeyPackage(carolKp.ref), undefined, "a normal key package is single use")
  assert.deepEqual((await bob.mls.members(groupId)).map((m) => m.deviceId).sort(), [alice.id, bob.id, carol.id].sort())

  for (const [from, text] of [[alice, "hello from alice"], [bob, "hi alice, bob here"], [carol, "carol says hi ☃"]] as const) {
    const { message, epoch } = await from.mls.encrypt(groupId, utf8.encode(text))
    assert.equal(epoch, 1)
    assert.ok(!Buffer.from(message).includes(Buffer.from(text)), "ciphertext does not contain the plaintext")
    log.send(from.id, groupId, message)
  }
  const ra = await alice.sync(log)
  await bob.sync(log)
  await carol.sync(log)
  assert.deepEqual(alice.got, ["hi alice, bob here", "carol says hi ☃"])
  assert.deepEqual(bob.got, ["hello from alice", "carol says hi ☃"])
  assert.deepEqual(carol.got, ["hello from alice", "hi alice, bob here"])
  assert.ok(ra.some((r) => r.kind === "own"))
  const app = ra.find((r) => r.kind === "application")
  assert.ok(app && app.kind === "application" && app.senderDeviceId === bob.id, "sender authenticated from the leaf")

  // Replaying an event already processed is recognised, not decrypted twice.
  const last = log.events.at(-1)!
  assert.deepEqual(await bob.mls.receive(last), { kind: "duplicate", seq: last.seq })
})

test("concurrent commits: one wins, the loser processes the winner and retries", async () => {
  const { log, alice, bob, carol, groupId } = await setup()
  await bob.sync(log)
  await carol.sync(log)
  const pa = await alice.mls.prepareCommit(groupId)
  const pb = await bob.mls.prepareCommit(groupId)
  assert.equal(pa.epoch, pb.epoch)
  assert.notEqual(log.commit(alice.id, pa), "conflict")
  await alice.mls.applyCommit(pa)
  assert.equal(log.commit(bob.id, pb), "conflict")
  // Bob keeps his old state, processes the winning commit, then retries.
  assert.equal(await bob.mls.epoch(groupId), 1)
  const rs = await bob.sync(log)
  const c = rs.find((r) => r.kind === "commit")
  assert.ok(c && c.kind === "commit" && c.committerDeviceId === alice.id && c.epoch === 2)
  await assert.rejects(bob.mls.applyCommit(pb), /epoch/)
  const pb2 = await bob.mls.prepareCommit(groupId)
  assert.equal(pb2.epoch, 2)
  assert.notEqual(log.commit(bob.id, pb2), "conflict")
  await bob.mls.applyCommit(pb2)
  await alice.sync(log)
  await carol.sync(log)
  for (const p of [alice, bob, carol]) assert.equal(await p.mls.epoch(groupId), 3, p.name)
  const { message } = await carol.mls.encrypt(groupId, utf8.encode("after the race"))
  log.send(carol.id, groupId, message)
  await alice.sync(log)
  await bob.sync(log)
  assert.deepEqual(alice.got, ["after the race"])
  assert.deepEqual(bob.got, ["after the race"])
})

test("a message from the previous epoch is read after a commit", async () => {
  const { log, alice, bob, carol, groupId } = await setup()
  await bob.sync(log)
  await carol.sync(log)
  const { message } = await bob.mls.encrypt(groupId, utf8.encode("sent in epoch 1"))
  log.send(bob.id, groupId, message)
  // Alice commits before she has read bob's message.
  const p = await alice.mls.prepareCommit(groupId)
  log.commit(alice.id, p)
  await alice.mls.applyCommit(p)
  await alice.sync(log)
  assert.deepEqual(alice.got, ["sent in epoch 1"])
})

test("removed member gets the removing commit and cannot read what follows", async () => {
  const { log, alice, bob, carol, groupId } = await setup()
  await bob.sync(log)
  await carol.sync(log)
  const p = await alice.mls.prepareCommit(groupId, { removeDevices: [carol.id] })
  const seq = log.commit(alice.id, p)
  assert.equal(typeof seq, "number")
  await alice.mls.applyCommit(p)
  const rs = await carol.sync(log)
  const c = rs.at(-1)!
  assert.ok(c.kind === "commit" && c.removedSelf && c.removedDevices.includes(carol.id))
  assert.equal(await carol.mls.isActive(groupId), false)
  const rb = await bob.sync(log)
  assert.ok(rb.at(-1)!.kind === "commit" && !(rb.at(-1) as { removedSelf: boolean }).removedSelf)
  assert.deepEqual((await bob.mls.members(groupId)).map((m) => m.deviceId).sort(), [alice.id, bob.id].sort())

  const { message } = await alice.mls.encrypt(groupId, utf8.encode("carol must not read this"))
  const s2 = log.send(alice.id, groupId, message)
  // Even if the bytes reach carol, she cannot decrypt them.
  const r = await carol.mls.receive({ seq: s2, kind: "application", groupId, senderDeviceId: alice.id, payload: message })
  assert.equal(r.kind, "failed")
  assert.deepEqual(carol.got, [])
  await bob.sync(log)
  assert.deepEqual(bob.got, ["carol must not read this"])
  await assert.rejects(carol.mls.encrypt(groupId, utf8.encode("x")), /no longer a member/)
  await assert.rejects(carol.mls.prepareCommit(groupId), /no longer a member/)
})

test("state persists: a restarted client continues from its store", async () => {
  const { log, alice, bob, carol, groupId } = await setup()
  await bob.sync(log)
  await carol.sync(log)
  const m1 = await alice.mls.encrypt(groupId, utf8.encode("before restart"))
  log.send(alice.id, groupId, m1.message)
  await bob.sync(log)
  // Restart: a new engine over the same storage.
  const restarted = new Peer("bob2", bob.id, await MlsClient.open(bob.id, new ClientStore(bob.kv)), bob.kv)
  restarted.cursor = 0 // even from the start of the feed: already processed events are recognised
  const m2 = await alice.mls.encrypt(groupId, utf8.encode("after restart"))
  log.send(alice.id, groupId, m2.message)
  const p = await alice.mls.prepareCommit(groupId)
  log.commit(alice.id, p)
  await alice.mls.applyCommit(p)
  const m3 = await alice.mls.encrypt(groupId, utf8.encode("new epoch"))
  log.send(alice.id, groupId, m3.message)
  const rs = await restarted.sync(log)
  assert.deepEqual(restarted.got, ["after restart", "new epoch"])
  assert.ok(rs.filter((r) => r.kind === "duplicate").length >= 2)
  assert.equal(await restarted.mls.epoch(groupId), 2)
})

test("garbage and tampering are reported, not thrown, and do not block the feed", async () => {
  const { log, alice, bob, groupId } = await setup()
  await bob.sync(log)
  const { message } = await alice.mls.encrypt(groupId, utf8.encode("tamper me"))
  const bad = message.slice()
  bad[bad.length - 5]! ^= 1
  const r1 = await bob.mls.receive({ seq: 100, kind: "application", groupId, senderDeviceId: alice.id, payload: bad })
  assert.equal(r1.kind, "failed")
  const r2 = await bob.mls.receive({ seq: 101, kind: "application", groupId, payload: new Uint8Array([1, 2, 3]) })
  assert.equal(r2.kind, "failed")
  const r3 = await bob.mls.receive({ seq: 102, kind: "welcome", payload: message })
  assert.equal(r3.kind, "failed")
  assert.equal((await bob.mls.store.getGroup(groupId))!.lastSeq, 101)
  const other = await Peer.make("z")
  const r4 = await other.mls.receive({ seq: 1, kind: "application", groupId, payload: message })
  assert.equal(r4.kind, "ignored")
  // The key package of a stranger's welcome is not ours.
  const w = log.events.find((e) => e.kind === "welcome")!
  assert.equal((await other.mls.receive({ ...w, seq: 5 })).kind, "ignored")
  assert.ok(decodeMlsMessage(w.payload, 0))
})

test("prepareCommit validates its inputs", async () => {
  const { log, alice, bob, groupId, carolKp } = await setup()
  await bob.sync(log)
  await assert.rejects(alice.mls.prepareCommit(groupId, { add: [carolKp.keyPackage] }), /already a member/)
  await assert.rejects(alice.mls.prepareCommit(groupId, { removeDevices: [randomUUID()] }), /not a member/)
  await assert.rejects(alice.mls.prepareCommit(groupId, { removeDevices: [alice.id] }), /itself/)
  await assert.rejects(alice.mls.prepareCommit(new Uint8Array(32)), /unknown group/)
})

// The padded content of a PrivateMessage: its ciphertext less the AEAD tag.
function paddedContentOf(message: Uint8Array): number {
  const m = decodeMlsMessage(message, 0)![0]
  assert.equal(m.wireformat, "mls_private_message")
  return (m as { privateMessage: { ciphertext: Uint8Array } }).privateMessage.ciphertext.length - AEAD_TAG_BYTES
}

test("padding: application messages are padded to a bucket by default, and still decrypt; padding: false opts out", async () => {
  assert.deepEqual([0, 256, 257, 300, 1000, 65000].map(paddedLength), [256, 256, 272, 304, 1024, 65536])
  assert.ok(isPaddedLength(272) && !isPaddedLength(257) && !isPaddedLength(255))
  const { log, alice, bob, groupId } = await setup()
  await bob.sync(log)
  const sizes = new Set<number>()
  for (const n of [0, 1, 100, 111, 112, 200, 1000, 4000, 20000]) {
    const text = "x".repeat(n)
    const { message } = await alice.mls.encrypt(groupId, utf8.encode(text))
    const content = paddedContentOf(message)
    assert.ok(isPaddedLength(content), `${n}-byte message: padded content of ${content} bytes is not a bucket`)
    sizes.add(content)
    log.send(alice.id, groupId, message)
    await bob.sync(log)
    assert.equal(bob.got.at(-1), text, "the padded message decrypts to its text")
  }
  assert.ok(sizes.has(256) && sizes.size < 9, `short messages share the smallest bucket: ${[...sizes].join(", ")}`)

  const kv = new MemoryKeyValueStore()
  const id = randomUUID()
  const unpadded = new Peer("dave", id, await MlsClient.open(id, new ClientStore(kv), { padding: false }), kv)
  const { groupId: g2 } = await unpadded.mls.createGroup()
  const { message } = await unpadded.mls.encrypt(g2, utf8.encode("y".repeat(1000)))
  assert.ok(!isPaddedLength(paddedContentOf(message)), "with padding: false the size is the content's own")
})

test("one signature key per device: made before sign-in, in every key package and leaf, kept across restarts", async () => {
  const store = new ClientStore(new MemoryKeyValueStore())
  const early = await MlsClient.deviceSignatureKey(store)
  const id = randomUUID()
  const c = await MlsClient.open(id, store)
  assert.equal(toHex(c.signatureKey), toHex(early))
  const kps = await c.generateKeyPackages(3)
  for (const k of kps) assert.equal(toHex(parseKeyPackage(k.keyPackage, DEFAULT_SUITE).keyPackage.leafNode.signaturePublicKey), toHex(early))
  const { groupId } = await c.createGroup()
  assert.equal(toHex((await c.members(groupId))[0]!.signatureKey), toHex(early))
  const again = await MlsClient.open(id, store)
  assert.equal(toHex(again.signatureKey), toHex(early))
  const other = await MlsClient.open(randomUUID(), new ClientStore(new MemoryKeyValueStore()))
  assert.notEqual(toHex(other.signatureKey), toHex(early))
})
