// History verification's loose ends (issue #18 item 2; docs/verification.md)
// against the real binary, with a misbehaving proxy at one member's fetch:
// (a) the verified chain head is persisted, so after a restart the first
// event is checked against it: an event withheld while Bob was away is
// detected at the first event after the restart; (b) commits carry their
// sender's chain head too: a server that drops one of Alice's messages for
// Bob and recomputes Bob's chain without it (continuity holds for Bob) is
// caught by Alice's next commit, with no application message after it;
// (c) a member removed and added again starts a fresh chain (no false alarm).
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { ServerProcess } from "./helpers/server.js"
import { App, misbehaving, until, type Rewrite } from "./helpers/history.js"
import { SovereignClient } from "../src/client.js"
import { MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { fromBase64, toBase64, toHex } from "../src/bytes.js"
import { chainHash } from "../src/chain.js"
import { decodeFeedEvent, type FeedEventJSON } from "../src/feed.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

test("history verification survives a restart, and commits carry their sender's chain head", { timeout: 300_000 }, async () => {
  const srv = await ServerProcess.start()
  cleanups.push(() => srv.cleanup())
  const open = async (storage: MemoryKeyValueStore, f?: typeof fetch) => {
    const c = await SovereignClient.open({ baseUrl: srv.url, storage, authenticator: new SoftwareAuthenticator({ origin: srv.origin }), fetch: f })
    const a = new App(c)
    cleanups.push(() => a.stop())
    return a
  }
  const register = async (name: string, inviteCode: string, storage: MemoryKeyValueStore, f?: typeof fetch) => {
    const a = await open(storage, f)
    await a.client.register({ inviteCode, username: name, displayName: name, deviceName: name + "'s device" })
    await a.client.replenishKeyPackages()
    return a
  }
  let aliceDevice = ""
  const fromAlice = (e: FeedEventJSON) => e.kind === "application" && e.sender_device_id === aliceDevice

  const alice = await register("alice", srv.adminInvite!, new MemoryKeyValueStore())
  aliceDevice = alice.client.deviceId
  alice.start()

  // (a) Bob is away while Alice sends r2 and r3; when he comes back, the
  // server withholds r2 from him.
  const bobStore = new MemoryKeyValueStore()
  let bob = await register("bob", await srv.invite(), bobStore)
  bob.start()
  const g1 = await alice.client.createGroup()
  await alice.client.addMembers(g1, ["bob"])
  await until("bob joins", () => bob.joined.has(toHex(g1)))
  const r1 = await alice.client.send(g1, "r1")
  await until("bob gets r1", () => bob.received.includes("r1"))
  await until("bob's chain reaches r1", () => (bob.client.history.head(g1)?.seq ?? 0) >= r1.seq)
  await bob.stop()

  const r2 = await alice.client.send(g1, "r2")
  await until("alice sees r2", () => (alice.client.history.head(g1)?.seq ?? 0) >= r2.seq)
  await alice.client.send(g1, "r3")

  const withheld = new Set<string>()
  let firstAfterRestart = true
  bob = await open(bobStore, misbehaving((evs) => evs.filter((e) => {
    if (fromAlice(e) && firstAfterRestart) {
      firstAfterRestart = false
      withheld.add(e.id)
    }
    return !withheld.has(e.id)
  })))
  assert.ok(bob.client.signedIn, "Bob's session came back from his store")
  bob.start()
  await until("bob gets r3", () => bob.received.includes("r3"))
  assert.deepEqual(bob.received, ["r3"], "the proxy withheld r2 from Bob after his restart")
  const gap = bob.mismatches.filter((m) => toHex(m.groupId) === toHex(g1))
  assert.ok(gap.some((m) => m.reason === "gap"), `the first event after the restart is checked against the stored head: ${JSON.stringify(gap.map((m) => m.reason))}`)
  await bob.stop()

  // (b) Carol's server drops Alice's x2 and recomputes Carol's chain without
  // it: every event Carol gets links to the one before. Alice then only
  // commits (a key update): the commit's head names x2, which Carol never got.
  const lastHash = new Map<string, Uint8Array>()
  const dropped = new Set<string>()
  let carolCount = 0
  const seen = new Set<string>()
  const recompute: Rewrite = (evs) => {
    const out: FeedEventJSON[] = []
    for (const e of evs) {
      if (fromAlice(e) && !seen.has(e.id)) {
        seen.add(e.id)
        if (++carolCount === 2) dropped.add(e.id)
      }
      if (dropped.has(e.id)) continue
      if (e.group_id && !e.recipient_device_id && e.hash && e.prev_hash) {
        const prev = lastHash.get(e.group_id) ?? fromBase64(e.prev_hash)
        const hash = chainHash(prev, decodeFeedEvent(e))
        lastHash.set(e.group_id, hash)
        e.prev_hash = toBase64(prev)
        e.hash = toBase64(hash)
      }
      out.push(e)
    }
    return out
  }
  const carol = await register("carol", await srv.invite(), new MemoryKeyValueStore(), misbehaving(recompute))
  carol.start()
  const g2 = await alice.client.createGroup()
  await alice.client.addMembers(g2, ["carol"])
  await until("carol joins", () => carol.joined.has(toHex(g2)))
  let last = 0
  for (const t of ["x1", "x2"]) {
    last = (await alice.client.send(g2, t)).seq
    await until(`alice sees ${t}`, () => (alice.client.history.head(g2)?.seq ?? 0) >= last)
  }
  await until("carol gets x1", () => carol.received.includes("x1"))
  assert.equal(carol.mismatches.length, 0, "the recomputed chain passes Carol's continuity check")
  await alice.client.updateKeys(g2)
  await until("carol notices at Alice's commit", () => carol.mismatches.length > 0)
  assert.deepEqual(carol.received, ["x1"])
  const m = carol.mismatches[0]!
  assert.equal(m.reason, "withheld")
  assert.equal(m.seq, last, "the commit's head names x2's seq")
  assert.equal(m.senderDeviceId, aliceDevice)
  assert.equal(alice.mismatches.length, 0, "Alice saw an honest history")

  // (c) Removed, then added again by a Welcome: Dave's chain starts afresh,
  // no false alarm for what he was not sent in between.
  const dave = await register("dave", await srv.invite(), new MemoryKeyValueStore())
  dave.start()
  const g3 = await alice.client.createGroup()
  await alice.client.addMembers(g3, ["dave"])
  await until("dave joins", () => dave.joined.has(toHex(g3)))
  await alice.client.send(g3, "d1")
  await until("dave gets d1", () => dave.received.includes("d1"))
  await alice.client.removeMembers(g3, ["dave"])
  await alice.client.send(g3, "d2 (not for dave)")
  dave.joined.clear()
  await alice.client.addMembers(g3, ["dave"])
  await until("dave is added again", () => dave.joined.has(toHex(g3)))
  await alice.client.send(g3, "d3")
  await until("dave gets d3", () => dave.received.includes("d3"))
  assert.deepEqual(dave.received, ["d1", "d3"])
  assert.deepEqual(dave.mismatches.map((m) => m.reason), [], "a new membership is not a gap")
})
