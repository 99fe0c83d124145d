// The history chain's persistence and the chain heads in commits and
// proposals, without a server (docs/verification.md): a snapshot stored
// through the (encrypted) ClientStore restores a verifier that checks the
// next event instead of trusting it; commits and leave proposals carry the
// authenticated data they were given, and the receiver gets it back.
import { test } from "node:test"
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import { CHAIN_GENESIS, HistoryVerifier, PERSISTED_HASHES, chainHash, decodeHead, encodeHead } from "../src/chain.js"
import type { FeedEvent } from "../src/feed.js"
import { ClientStore, EncryptedKeyValueStore, MemoryKeyValueStore } from "../src/storage.js"
import { MlsClient } from "../src/mls.js"
import { utf8 } from "../src/bytes.js"

const gid = utf8.encode("group-1")

function chain(n: number): FeedEvent[] {
  const out: FeedEvent[] = []
  let prev: Uint8Array = CHAIN_GENESIS
  for (let i = 1; i <= n; i++) {
    const e: FeedEvent = { seq: i * 2, id: String(i), groupId: gid, kind: "application", epoch: 1, senderDeviceId: "d", serverTime: "", payload: utf8.encode("m" + i), prevHash: prev }
    e.hash = chainHash(prev, e)
    prev = e.hash
    out.push(e)
  }
  return out
}

test("a restored chain checks the next event: gap, reorder and duplicate after a restart", async () => {
  const evs = chain(50)
  const store = new ClientStore(new EncryptedKeyValueStore(new MemoryKeyValueStore(), new Uint8Array(32).fill(1)))
  const v = new HistoryVerifier()
  for (const e of evs.slice(0, 40)) assert.deepEqual(v.observe(e), [])
  const snap = v.snapshot(gid)!
  assert.equal(snap.seen.length, PERSISTED_HASHES)
  assert.equal(snap.seen.at(-1)!.seq, evs[39]!.seq)
  await store.putChain(gid, snap)
  assert.deepEqual(await store.listChains(), [Buffer.from(gid).toString("hex")])

  const restart = async () => {
    const r = new HistoryVerifier()
    r.restore(gid, (await store.getChain(gid))!)
    return r
  }
  // Honest: the next event links to the stored head; the stored head is this device's head again.
  const honest = await restart()
  assert.deepEqual(honest.head(gid), { seq: evs[39]!.seq, hash: evs[39]!.hash })
  assert.deepEqual(honest.observe(evs[40]!), [])
  // The server withholds the 41st event across the restart: a gap at the 42nd.
  const gap = await restart()
  assert.equal(gap.observe(evs[41]!)[0]?.reason, "gap")
  // A replay of an event seen before the restart is a duplicate; an older, unseen one is a reorder.
  const dup = await restart()
  assert.deepEqual(dup.observe(evs[39]!), [])
  assert.deepEqual(dup.observe(evs[20]!), [], "within the stored window: a duplicate")
  assert.equal(dup.observe({ ...evs[20]!, seq: evs[20]!.seq + 1, hash: chainHash(evs[19]!.hash!, { ...evs[20]!, seq: evs[20]!.seq + 1 }) })[0]?.reason, "reorder")
  // A member's head within the window is checked; one before it is skipped.
  const heads = await restart()
  assert.deepEqual(heads.memberHead(gid, { seq: evs[30]!.seq, hash: evs[30]!.hash! }), [])
  assert.equal(heads.memberHead(gid, { seq: evs[30]!.seq, hash: new Uint8Array(32) })[0]?.reason, "fork")
  assert.deepEqual(heads.memberHead(gid, { seq: evs[2]!.seq, hash: new Uint8Array(32) }), [], "before the stored window: cannot be checked")
  // Without the stored chain the same withheld event goes unseen.
  assert.deepEqual(new HistoryVerifier().observe(evs[41]!), [])

  // Leaving the group deletes its chain with it.
  await store.deleteGroup(gid)
  assert.equal(await store.getChain(gid), undefined)
})

test("commits and leave proposals carry the sender's chain head in their authenticated data", async () => {
  const open = () => MlsClient.open(randomUUID(), new ClientStore(new MemoryKeyValueStore()))
  const [alice, bob, carol] = [await open(), await open(), await open()]
  const { groupId } = await alice.createGroup()
  const kps = [(await bob.generateKeyPackages(1))[0]!.keyPackage, (await carol.generateKeyPackages(1))[0]!.keyPackage]
  const add = await alice.prepareCommit(groupId, { add: kps })
  await alice.applyCommit(add)
  for (const m of [bob, carol]) assert.equal((await m.receive({ seq: 1, kind: "welcome", payload: add.welcome! })).kind, "joined")

  const head = { seq: 41, hash: new Uint8Array(32).fill(9) }
  const update = await alice.prepareCommit(groupId, {}, encodeHead(head))
  await alice.applyCommit(update)
  for (const m of [bob, carol]) {
    const r = await m.receive({ seq: 2, kind: "commit", groupId, senderDeviceId: alice.deviceId, payload: update.commit })
    assert.equal(r.kind, "commit")
    assert.deepEqual(decodeHead(r.kind === "commit" ? r.authenticatedData : new Uint8Array()), head, "a commit's head (PrivateMessage, under the AEAD)")
  }
  const leave = await carol.prepareLeave(groupId, encodeHead({ seq: 43, hash: new Uint8Array(32).fill(3) }))
  const r = await bob.receive({ seq: 3, kind: "proposal", groupId, senderDeviceId: carol.deviceId, payload: leave.proposal })
  assert.equal(r.kind, "proposal")
  if (r.kind !== "proposal") return
  assert.deepEqual(decodeHead(r.authenticatedData), { seq: 43, hash: new Uint8Array(32).fill(3) }, "a leave proposal's head (PublicMessage, signed)")
  assert.deepEqual(r.removesDevices, [carol.deviceId])
  assert.equal(r.senderDeviceId, carol.deviceId)
})
