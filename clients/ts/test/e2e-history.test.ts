// History verification (issue #18, item 2; docs/verification.md) against
// the real binary, with a deliberately misbehaving server: a proxy at the
// fetch layer of one member's client that rewrites the long-poll feed the
// real server sends (it cannot recompute the chain's hashes without the
// server's help, exactly as a man in the middle; a server that recomputes
// them is caught by the chain heads in members' messages, checked in the
// unit tests of HistoryVerifier).
//
// (a) one of Alice's messages is dropped for Bob only: Bob detects it at
// Alice's next message; (b) two of Alice's messages reach Carol swapped:
// detected; (c) an honest run over many messages in 5 groups raises no alarm.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { ServerProcess } from "./helpers/server.js"
import { App, misbehaving, until, type Rewrite } from "./helpers/history.js"
import { SovereignClient } from "../src/client.js"
import { MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { toHex, utf8 } from "../src/bytes.js"
import { HistoryVerifier, chainHash, CHAIN_GENESIS } from "../src/chain.js"
import type { FeedEvent, FeedEventJSON } from "../src/feed.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

test("history verification: a dropped or reordered message is detected, an honest run raises no alarm", { timeout: 600_000 }, async () => {
  // The honest run sends 1,000 messages within a minute or two: lift the per-user send budget.
  const srv = await ServerProcess.start(["--messages-per-minute", "100000"])
  cleanups.push(() => srv.cleanup())
  const open = async (name: string, inviteCode: string, f?: typeof fetch) => {
    const c = await SovereignClient.open({
      baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }), fetch: f,
    })
    await c.register({ inviteCode, username: name, displayName: name, deviceName: name + "'s device" })
    await c.replenishKeyPackages()
    const a = new App(c)
    cleanups.push(() => a.stop()) // also when an assertion fails midway
    return a
  }
  let aliceDevice = ""
  const fromAlice = (e: FeedEventJSON) => e.kind === "application" && e.sender_device_id === aliceDevice

  // Bob's proxy drops Alice's 2nd message, for Bob only.
  const dropped = new Set<string>()
  let bobSeen = 0
  const bobSeenIds = new Set<string>()
  const dropSecond: Rewrite = (evs) =>
    evs.filter((e) => {
      if (!fromAlice(e)) return true
      if (!bobSeenIds.has(e.id)) {
        bobSeenIds.add(e.id)
        if (++bobSeen === 2) dropped.add(e.id)
      }
      return !dropped.has(e.id)
    })
  // Carol's proxy holds Alice's 2nd message back and delivers it after the 3rd.
  let carolSeen = 0
  const carolIds = new Map<string, number>()
  let held: FeedEventJSON | undefined
  let released = false
  const swap: Rewrite = (evs) => {
    const out: FeedEventJSON[] = []
    for (const e of evs) {
      if (fromAlice(e) && !carolIds.has(e.id)) carolIds.set(e.id, ++carolSeen)
      const n = fromAlice(e) ? carolIds.get(e.id)! : 0
      if (n === 2 && !released) {
        held = e
        continue
      }
      out.push(e)
      if (n === 3 && held && !released) {
        out.push(held)
        released = true
      }
    }
    return out
  }

  const alice = await open("alice", srv.adminInvite!)
  aliceDevice = alice.client.deviceId
  const bob = await open("bob", await srv.invite(), misbehaving(dropSecond))
  const carol = await open("carol", await srv.invite(), misbehaving(swap))
  const dave = await open("dave", await srv.invite())
  alice.start("sse")
  bob.start("longpoll")
  carol.start("longpoll")
  dave.start("sse")

  // (a) dropped for Bob only.
  const g1 = await alice.client.createGroup()
  await alice.client.addMembers(g1, ["bob"])
  await until("bob joins", () => bob.joined.has(toHex(g1)))
  for (const t of ["a1", "a2", "a3"]) {
    const r = await alice.client.send(g1, t)
    await until(`alice sees her ${t}`, () => (alice.client.history.head(g1)?.seq ?? 0) >= r.seq)
  }
  await until("bob gets a1 and a3", () => bob.received.includes("a1") && bob.received.includes("a3"))
  assert.deepEqual(bob.received, ["a1", "a3"], "the proxy withheld a2 from Bob")
  const gap = bob.mismatches.filter((m) => toHex(m.groupId) === toHex(g1))
  assert.ok(gap.some((m) => m.reason === "gap"), `Bob detects the gap at Alice's next message: ${JSON.stringify(gap.map((m) => m.reason))}`)
  assert.ok(gap.some((m) => m.reason === "withheld" && m.senderDeviceId === aliceDevice), "and a3's chain head names the event Bob never got")
  assert.equal(alice.mismatches.length, 0, "Alice saw an honest history")

  // (b) two of Alice's messages reach Carol swapped.
  const g2 = await alice.client.createGroup()
  await alice.client.addMembers(g2, ["carol"])
  await until("carol joins", () => carol.joined.has(toHex(g2)))
  for (const t of ["c1", "c2", "c3"]) {
    const r = await alice.client.send(g2, t)
    await until(`alice sees her ${t}`, () => (alice.client.history.head(g2)?.seq ?? 0) >= r.seq)
  }
  await until("carol's proxy delivered the swapped pair", () => released)
  await until("carol notices", () => carol.mismatches.length > 0)
  const found = carol.mismatches.map((m) => m.reason)
  assert.ok(found.includes("gap") || found.includes("reorder"), `Carol detects the reordering: ${found}`)

  // (c) an honest run: many messages in 5 groups, no alarm anywhere.
  const total = Number(process.env.SOVEREIGN_HISTORY_MESSAGES ?? 1000)
  const groups: Uint8Array[] = []
  for (let i = 0; i < 5; i++) {
    const g = await alice.client.createGroup()
    await alice.client.addMembers(g, ["dave"])
    groups.push(g)
  }
  await until("dave joins 5 groups", () => groups.every((g) => dave.joined.has(toHex(g))))
  const start = Date.now()
  const daveBefore = dave.received.length
  const aliceBefore = alice.received.length
  let fromDave = 0
  for (let i = 0; i < total; i++) {
    const g = groups[i % 5]!
    // Alternate senders, with bursts both ways so heads are often behind or ahead.
    if (i % 4 === 3) {
      await dave.client.send(g, `d${i}`)
      fromDave++
    } else await alice.client.send(g, `a${i}`)
  }
  await until("honest run delivered", () => dave.received.length - daveBefore === total - fromDave && alice.received.length - aliceBefore === fromDave, 300_000)
  const ms = Date.now() - start
  console.log(`honest run: ${total} messages in 5 groups, sent and received in ${ms} ms (${(ms / total).toFixed(1)} ms per message)`)
  assert.equal(alice.mismatches.length, 0, `no alarm at Alice: ${JSON.stringify(alice.mismatches.map((m) => m.reason))}`)
  assert.equal(dave.mismatches.length, 0, `no alarm at Dave: ${JSON.stringify(dave.mismatches.map((m) => m.reason))}`)
})

// The fork a server could build by recomputing the whole chain for one
// member: continuity holds for that member, but a member's head names a
// hash at a seq where the victim holds another.
test("history verifier: a recomputed (forked) chain is caught by a member's head", () => {
  const gid = utf8.encode("group")
  const ev = (seq: number, prev: Uint8Array, payload: string): FeedEvent => {
    const e: FeedEvent = { seq, id: String(seq), groupId: gid, kind: "application", epoch: 1, senderDeviceId: "d", serverTime: "", payload: utf8.encode(payload), prevHash: prev }
    e.hash = chainHash(prev, e)
    return e
  }
  // The real chain: m1, m2, m3. The fork for the victim: m1, m3' (recomputed without m2).
  const m1 = ev(1, CHAIN_GENESIS, "m1")
  const m2 = ev(2, m1.hash!, "m2")
  const forked = ev(3, m1.hash!, "m3")
  const victim = new HistoryVerifier()
  assert.deepEqual(victim.observe(m1), [])
  assert.deepEqual(victim.observe(forked), [], "a consistent recomputed chain passes continuity")
  // A member's message carries its head (m2 at seq 2): the victim has nothing at seq 2.
  const found = victim.memberHead(gid, { seq: 2, hash: m2.hash! }, "alice")
  assert.equal(found.length, 1)
  assert.equal(found[0]!.reason, "withheld")
  // A head ahead of the victim is checked once it gets there.
  const v2 = new HistoryVerifier()
  v2.observe(m1)
  assert.deepEqual(v2.memberHead(gid, { seq: 3, hash: new Uint8Array(32).fill(7) }, "bob"), [])
  assert.equal(v2.observe(forked)[0]?.reason, "fork")
  // Tampered content breaks the hash; an honest member head raises nothing.
  const bad = { ...m2, payload: utf8.encode("m2!") }
  assert.equal(new HistoryVerifier().observe(bad)[0]?.reason, "bad_hash")
  const honest = new HistoryVerifier()
  honest.observe(m1)
  honest.observe(m2)
  assert.deepEqual(honest.memberHead(gid, { seq: 1, hash: m1.hash! }), [], "a head behind ours, on our chain")
})
