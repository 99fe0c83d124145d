// Safety codes (issue #18 item 3; docs/verification.md) on real ts-mls
// groups, without a server: members at the same epoch see the same code, a
// commit changes it for everyone alike, and a member of a different group
// with the same id (a server that forked or split the group) sees another.
import { test } from "node:test"
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import { MlsClient, type PendingCommit } from "../src/mls.js"
import { ClientStore, MemoryKeyValueStore } from "../src/storage.js"
import {
  SAFETY_QR_PREFIX, compareSafetyQr, parseSafetyQr, safetyDigest, safetyDigits, type SafetyCode,
} from "../src/safety.js"
import { fromBase64url } from "../src/bytes.js"

let seq = 0

async function device(): Promise<MlsClient> {
  return MlsClient.open(randomUUID(), new ClientStore(new MemoryKeyValueStore()))
}

/** committer adds joiners (each with a fresh key package); others process the commit. */
async function add(committer: MlsClient, gid: Uint8Array, joiners: MlsClient[], others: MlsClient[]): Promise<void> {
  const kps = []
  for (const j of joiners) kps.push((await j.generateKeyPackages(1))[0]!.keyPackage)
  const p = await committer.prepareCommit(gid, { add: kps })
  await committer.applyCommit(p)
  await deliver(p, committer, others)
  for (const j of joiners) {
    const r = await j.receive({ seq: ++seq, kind: "welcome", payload: p.welcome! })
    assert.equal(r.kind, "joined", JSON.stringify(r))
  }
}

async function deliver(p: PendingCommit, from: MlsClient, to: MlsClient[]): Promise<void> {
  const s = ++seq
  for (const m of to) {
    const r = await m.receive({ seq: s, kind: "commit", groupId: p.groupId, senderDeviceId: from.deviceId, payload: p.commit })
    assert.equal(r.kind, "commit", JSON.stringify(r))
  }
}

function assertShape(c: SafetyCode) {
  assert.match(c.code, /^[0-9]{4} [0-9]{4} [0-9]{4}$/)
  assert.equal(c.digest.length, 32)
  assert.ok(c.qr.startsWith(SAFETY_QR_PREFIX))
  const q = parseSafetyQr(c.qr)!
  assert.equal(q.epoch, c.epoch)
  assert.deepEqual(q.digest, c.digest)
  assert.deepEqual(q.groupId, c.groupId)
}

test("safety codes: same for members at one epoch, new and equal after a commit, different in a forked group", async () => {
  const [alice, bob, carol] = [await device(), await device(), await device()]
  const { groupId } = await alice.createGroup()
  await add(alice, groupId, [bob], [])

  const a1 = await alice.safetyCode(groupId)
  const b1 = await bob.safetyCode(groupId)
  assertShape(a1)
  assert.equal(a1.epoch, 1)
  assert.equal(a1.code, b1.code)
  assert.equal(a1.qr, b1.qr)
  assert.equal(compareSafetyQr(a1, b1.qr), "match")

  // A commit (Bob adds Carol): both codes change, and still agree; Carol's too.
  await add(bob, groupId, [carol], [alice])
  const [a2, b2, c2] = [await alice.safetyCode(groupId), await bob.safetyCode(groupId), await carol.safetyCode(groupId)]
  assert.equal(a2.epoch, 2)
  assert.notEqual(a2.code, a1.code)
  assert.equal(a2.code, b2.code)
  assert.equal(a2.code, c2.code)
  assert.equal(compareSafetyQr(a2, a1.qr), "other_epoch")

  // A forked group: someone builds another group with the same id and adds
  // Bob's second device (what a server in the middle would show him). Same
  // id, same epoch, another code.
  const [mallory, bob2] = [await device(), await device()]
  await mallory.createGroup(groupId)
  await add(mallory, groupId, [bob2], [])
  await add(mallory, groupId, [await device()], [bob2])
  const f = await bob2.safetyCode(groupId)
  assert.equal(f.epoch, 2)
  assert.deepEqual(f.groupId, a2.groupId)
  assert.notEqual(f.code, a2.code)
  assert.equal(compareSafetyQr(a2, f.qr), "mismatch")

  // A split: the server shows Alice's commit to Carol and Bob's own to Bob
  // (both made at epoch 2). Alice and Carol agree; Bob's code differs.
  const pa = await alice.prepareCommit(groupId)
  const pb = await bob.prepareCommit(groupId)
  await alice.applyCommit(pa)
  await bob.applyCommit(pb)
  await deliver(pa, alice, [carol])
  const [a3, b3, c3] = [await alice.safetyCode(groupId), await bob.safetyCode(groupId), await carol.safetyCode(groupId)]
  assert.equal(a3.epoch, 3)
  assert.equal(b3.epoch, 3)
  assert.equal(a3.code, c3.code)
  assert.notEqual(a3.code, b3.code)
  assert.equal(compareSafetyQr(b3, a3.qr), "mismatch")

  // Figure: the time to compute a safety code (load and decode the stored
  // group state, hash), 3 members.
  const n = 200
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await alice.safetyCode(groupId)
  const ms = (performance.now() - t0) / n
  console.log(`safety code: ${ms.toFixed(3)} ms per call (3 members, state loaded from the store each time)`)
})

test("safety digest: fixed encoding, digits and QR parsing", () => {
  const gid = new Uint8Array([1, 2, 3])
  const auth = new Uint8Array(32).fill(7)
  const d = safetyDigest(gid, 5n, auth)
  assert.deepEqual(d, safetyDigest(gid, 5, auth))
  assert.notDeepEqual(d, safetyDigest(gid, 6n, auth))
  assert.notDeepEqual(d, safetyDigest(new Uint8Array([1, 2, 4]), 5n, auth))
  assert.notDeepEqual(d, safetyDigest(gid, 5n, new Uint8Array(32).fill(8)))
  assert.equal(safetyDigits(new Uint8Array(32)), "0000 0000 0000")
  // 2^64 - 1 = 18446744073709551615: the last 12 digits.
  assert.equal(safetyDigits(new Uint8Array(32).fill(0xff)), "0737 0955 1615")
  assert.equal(parseSafetyQr("hello"), undefined)
  assert.equal(parseSafetyQr(SAFETY_QR_PREFIX + "AQID:x:" + "A".repeat(43)), undefined)
  assert.equal(parseSafetyQr(SAFETY_QR_PREFIX + "AQID:1:AAAA"), undefined)
  const q = parseSafetyQr(SAFETY_QR_PREFIX + "AQID:9:" + "A".repeat(43))!
  assert.deepEqual(q.groupId, fromBase64url("AQID"))
  assert.equal(q.epoch, 9)
})
