// The acceptance test of issue 7: real MLS clients (ts-mls) talking through
// the real sovereign binary, which sees only ciphertext.
//
// Alice, Bob and Carol register with invites, upload key packages; Alice
// creates a group and adds Bob and Carol; messages flow both ways with Bob on
// SSE and Carol on long-poll; Alice and Bob commit at the same moment (one
// wins, the other processes the winner and retries); Carol is removed (she
// gets the removing commit, nothing after it, and cannot decrypt what
// follows); Bob restarts from his persisted (encrypted) state and catches up;
// an admin disables Dave and a member's client commits his MLS removal by
// itself (exactly one commit).
// Every plaintext arrives exactly once and intact, and none of them is in the
// server's database files.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { randomBytes, randomUUID } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ServerProcess } from "./helpers/server.js"
import { SovereignClient, type ClientEvent } from "../src/client.js"
import { EncryptedKeyValueStore, MemoryKeyValueStore, type KeyValueStore } from "../src/storage.js"
import { FileKeyValueStore } from "../src/node-store.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { equal, toHex, utf8 } from "../src/bytes.js"
import { pollOnce } from "../src/feed.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

/** One person's app: the SDK client, what it received, its feed loop. */
class App {
  received: { seq: number; text: string; from: string; group: string }[] = []
  events: ClientEvent[] = []
  commitStatuses: number[] = []
  private ctrl?: AbortController
  private loop?: Promise<void>
  loopError?: unknown

  constructor(
    readonly name: string,
    public client: SovereignClient,
  ) {
    this.listen()
  }

  listen() {
    this.client.on((e) => {
      this.events.push(e)
      if (e.result.kind === "application") {
        this.received.push({ seq: e.seq, text: utf8.decode(e.result.plaintext), from: e.result.senderDeviceId, group: toHex(e.result.groupId) })
      }
    })
  }

  static fetchRecorder(statuses: number[]): typeof fetch {
    return async (input, init) => {
      const res = await fetch(input, init)
      const url = input instanceof Request ? input.url : String(input)
      if (url.includes("/commits")) statuses.push(res.status)
      return res
    }
  }

  start(transport: "sse" | "longpoll" | "auto") {
    this.ctrl = new AbortController()
    this.loop = this.client.run(this.ctrl.signal, { transport, pollTimeout: 5 }).catch((e) => {
      this.loopError = e
    })
  }

  async stop() {
    this.ctrl?.abort()
    await this.loop
    this.client.stop()
  }

  texts(): string[] {
    return this.received.map((r) => r.text)
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test("end to end: three MLS clients through the real server, which sees only ciphertext", { timeout: 180_000 }, async () => {
  // --require-padding: every message the SDK sends must be padded to a bucket (it pads by default).
  const srv = await ServerProcess.start(["--require-padding"])
  cleanups.push(() => srv.cleanup())
  assert.ok(srv.adminInvite, "first start prints a one-time admin invite")

  // Every plaintext carries a random tag, so finding it in the database could only mean a leak.
  const tag = randomBytes(6).toString("hex")
  const sent = new Map<string, string>() // text -> sender name
  const msg = (who: string, n: string) => {
    const t = `${who} ${n} [${tag}-${randomUUID()}] ☃ ünïcødé`
    sent.set(t, who)
    return t
  }

  // --- registration with invites ------------------------------------------------
  const bobDir = await mkdtemp(join(tmpdir(), "sovereign-bob-"))
  cleanups.push(() => rm(bobDir, { recursive: true, force: true }))
  const bobKey = randomBytes(32)
  const bobStorage = (): KeyValueStore => new EncryptedKeyValueStore(new FileKeyValueStore(bobDir), bobKey)

  const aliceStatuses: number[] = []
  const bobStatuses: number[] = []
  const alice = new App("alice", await SovereignClient.open({
    baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }),
    fetch: App.fetchRecorder(aliceStatuses),
  }))
  const bobAuth = new SoftwareAuthenticator({ origin: srv.origin, backupEligible: true, backupState: true })
  const bob = new App("bob", await SovereignClient.open({ baseUrl: srv.url, storage: bobStorage(), authenticator: bobAuth, fetch: App.fetchRecorder(bobStatuses) }))
  const carol = new App("carol", await SovereignClient.open({
    baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }),
  }))

  await alice.client.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "Alice's laptop" })
  await bob.client.register({ inviteCode: await srv.invite(), username: "bob", displayName: "Bob", deviceName: "Bob's phone" })
  await carol.client.register({ inviteCode: await srv.invite(), username: "carol", displayName: "Carol", deviceName: "Carol's tablet" })

  // --- key packages ------------------------------------------------------------------
  for (const a of [alice, bob, carol]) assert.equal(await a.client.replenishKeyPackages(), 11, `${a.name}: 10 + last resort`)
  assert.equal(await bob.client.replenishKeyPackages(), 0, "nothing to add when stocked")

  // --- feeds: Bob on SSE, Carol on long-poll, Alice automatic -----------------------
  alice.start("auto")
  bob.start("sse")
  carol.start("longpoll")

  // --- Alice creates a group and adds Bob and Carol --------------------------------------
  const gid = await alice.client.createGroup()
  const g = toHex(gid)
  const added = await alice.client.addMembers(gid, ["bob", "carol"])
  assert.deepEqual(added.sort(), [bob.client.deviceId, carol.client.deviceId].sort())
  for (const a of [bob, carol]) {
    await until(`${a.name} joins`, () => a.events.some((e) => e.result.kind === "joined" && equal(e.result.groupId, gid)))
  }
  const server = await alice.client.group(gid)
  assert.equal(server.epoch, 1)
  assert.deepEqual((server.members ?? []).map((m) => m.username).sort(), ["alice", "bob", "carol"])

  // --- messages in both directions --------------------------------------------------------
  const m1 = msg("alice", "hello everyone")
  const m2 = msg("bob", "hi alice")
  const m3 = msg("carol", "hello from the long-poll side")
  await alice.client.send(gid, m1)
  await bob.client.send(gid, m2)
  await carol.client.send(gid, m3)
  await until("first round delivered", () =>
    alice.texts().length === 2 && bob.texts().length === 2 && carol.texts().length === 2)
  assert.deepEqual(alice.texts().sort(), [m2, m3].sort())
  assert.deepEqual(bob.texts().sort(), [m1, m3].sort())
  assert.deepEqual(carol.texts().sort(), [m1, m2].sort())
  assert.equal(bob.client.transport, "sse")
  assert.equal(carol.client.transport, "longpoll")
  // The sender of each message is the device that signed it.
  const devices = new Map([[alice.client.deviceId, "alice"], [bob.client.deviceId, "bob"], [carol.client.deviceId, "carol"]])
  for (const a of [alice, bob, carol]) for (const r of a.received) assert.equal(devices.get(r.from), sent.get(r.text))

  // --- Alice and Bob commit at the same moment: one wins, the other retries ---------------
  aliceStatuses.length = 0
  bobStatuses.length = 0
  const epochBefore = await alice.client.mls.epoch(gid)
  const [ra, rb] = await Promise.all([alice.client.updateKeys(gid), bob.client.updateKeys(gid)])
  const statuses = [...aliceStatuses, ...bobStatuses]
  assert.equal(statuses.filter((s) => s === 409).length, 1, `exactly one commit lost the race: ${statuses}`)
  assert.equal(statuses.filter((s) => s === 201).length, 2, `both commits were finally accepted: ${statuses}`)
  assert.deepEqual([ra, rb].sort(), [epochBefore + 1, epochBefore + 2])
  for (const a of [alice, bob, carol]) {
    await until(`${a.name} reaches epoch ${epochBefore + 2}`, async () => (await a.client.mls.epoch(gid)) === epochBefore + 2)
  }
  const m4 = msg("bob", "after the race")
  const m5 = msg("carol", "still here")
  await bob.client.send(gid, m4)
  await carol.client.send(gid, m5)
  await until("post-race messages", () => alice.texts().includes(m4) && alice.texts().includes(m5) && carol.texts().includes(m4) && bob.texts().includes(m5))

  // --- Carol is removed -------------------------------------------------------------------
  const removed = await alice.client.removeMembers(gid, ["carol"])
  assert.deepEqual(removed, [carol.client.deviceId])
  await until("carol sees her removal", () => carol.events.some((e) => e.result.kind === "commit" && e.result.removedSelf))
  const removal = carol.events.find((e) => e.result.kind === "commit" && e.result.removedSelf)!
  assert.equal(await carol.client.mls.isActive(gid), false)
  const m6 = msg("alice", "carol is gone")
  const m7 = msg("bob", "just us now")
  await alice.client.send(gid, m6)
  await bob.client.send(gid, m7)
  await until("messages after the removal", () => alice.texts().includes(m7) && bob.texts().includes(m6))
  // The server sends Carol nothing of the group after the removing commit.
  const later = await pollOnce({ baseUrl: srv.url, token: () => carol.client.token }, removal.seq)
  assert.ok(later.events.every((e) => e.seq > removal.seq))
  assert.deepEqual(later.events.filter((e) => e.groupId && equal(e.groupId, gid)), [])
  assert.equal(carol.events.filter((e) => e.seq > removal.seq && e.groupId && equal(e.groupId, gid)).length, 0)
  // Even given the ciphertext, she cannot decrypt it.
  const m6event = bob.events.find((e) => e.result.kind === "application" && utf8.decode(e.result.plaintext) === m6)!
  const attempt = await carol.client.mls.receive({ ...m6event.event, seq: m6event.seq })
  assert.equal(attempt.kind, "failed")
  assert.ok(!carol.texts().includes(m6) && !carol.texts().includes(m7))
  // And she can no longer send into the group.
  await assert.rejects(carol.client.send(gid, "let me back in"))

  // --- Bob restarts from persisted state and catches up ----------------------------------
  await bob.stop()
  const bobSeen = bob.texts()
  const m8 = msg("alice", "while bob was away 1")
  await alice.client.send(gid, m8)
  await alice.client.updateKeys(gid) // a new epoch while Bob is offline
  const m9 = msg("alice", "while bob was away 2")
  await alice.client.send(gid, m9)
  const bob2 = new App("bob", await SovereignClient.open({ baseUrl: srv.url, storage: bobStorage(), authenticator: bobAuth }))
  assert.equal(bob2.client.deviceId, bob.client.deviceId, "same device from the stored session")
  bob2.received = [...bob.received]
  bob2.start("sse")
  await until("bob catches up", () => bob2.texts().includes(m9))
  const m10 = msg("bob", "back again")
  await bob2.client.send(gid, m10)
  await until("alice hears bob after his restart", () => alice.texts().includes(m10))
  assert.deepEqual(bob2.texts().slice(bobSeen.length), [m8, m9])

  // --- an admin cuts Dave off; a member commits his MLS removal on its own ----------------
  const dave = new App("dave", await SovereignClient.open({
    baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }),
  }))
  await dave.client.register({ inviteCode: await srv.invite(), username: "dave", displayName: "Dave", deviceName: "Dave's phone" })
  await dave.client.replenishKeyPackages()
  dave.start("auto")
  await alice.client.addMembers(gid, ["dave"])
  await until("dave joins", () => dave.events.some((e) => e.result.kind === "joined" && equal(e.result.groupId, gid)))
  const withDave = (await alice.client.group(gid)).epoch
  for (const a of [alice, bob2]) {
    await until(`${a.name} sees dave's leaf`, async () => (await a.client.mls.members(gid)).some((m) => m.deviceId === dave.client.deviceId))
  }
  // Alice registered with the admin invite: she disables Dave's account. The
  // server cuts his device off at once and posts a remove_device notice;
  // Alice's and Bob's clients race (random delay) to commit the removal.
  const commitsBefore = aliceStatuses.length
  const dis = await alice.client.api.POST("/v1/admin/users/{id}/disable", { params: { path: { id: dave.client.userId } } })
  assert.equal(dis.response.status, 200, "disable dave")
  for (const a of [alice, bob2]) {
    await until(`${a.name} no longer has dave's leaf`, async () =>
      !(await a.client.mls.members(gid)).some((m) => m.deviceId === dave.client.deviceId))
  }
  for (const a of [alice, bob2]) {
    assert.ok(a.events.some((e) => e.result.kind === "notice" && e.result.notice.type === "remove_device"), `${a.name} got the notice`)
    await a.client.idle()
  }
  assert.equal((await alice.client.group(gid)).epoch, withDave + 1, "exactly one removal commit: the loser of a race commits nothing")
  assert.ok(aliceStatuses.slice(commitsBefore).every((s) => s === 201 || s === 409), `alice's commits: ${aliceStatuses}`)
  const m11 = msg("alice", "dave is gone")
  await alice.client.send(gid, m11)
  await until("bob hears alice after dave's removal", () => bob2.texts().includes(m11))
  await dave.stop()

  // --- exactly once, intact ---------------------------------------------------------------
  await until("acks flushed", async () => true)
  await Promise.all([alice.stop(), bob2.stop(), carol.stop()])
  for (const a of [alice, bob2, carol]) assert.equal(a.loopError, undefined, `${a.name}'s feed failed: ${a.loopError}`)
  const expect = {
    alice: [m2, m3, m4, m5, m7, m10],
    bob: [m1, m3, m5, m6, m8, m9, m11],
    carol: [m1, m2, m4],
  }
  for (const [a, want] of [[alice, expect.alice], [bob2, expect.bob], [carol, expect.carol]] as const) {
    assert.deepEqual([...a.texts()].sort(), [...want].sort(), `${a.name} received every message meant for it exactly once`)
    assert.equal(new Set(a.received.map((r) => r.seq)).size, a.received.length, `${a.name}: no seq twice`)
    assert.ok(a.received.every((r) => r.group === g))
  }

  // --- the server's database holds none of the plaintexts ------------------------------
  const scan = async (when: string) => {
    const files = await srv.databaseFiles()
    assert.ok(files.some((f) => f.name === "sovereign.db"))
    const all = Buffer.concat(files.map((f) => f.bytes))
    // Positive control: the scan does see data the server does store in clear.
    assert.ok(all.includes(Buffer.from("carol")), `${when}: usernames are found, so the scan reads real data`)
    for (const t of sent.keys()) {
      assert.ok(!all.includes(Buffer.from(t, "utf8")), `${when}: plaintext found in the database: ${t}`)
      assert.ok(!all.includes(Buffer.from(tag, "utf8")), `${when}: message tag found in the database`)
    }
    return files.map((f) => f.name)
  }
  const live = await scan("while running")
  assert.equal(await srv.stop(), 0, "clean shutdown")
  await scan("after shutdown")
  assert.ok(live.length >= 1)
})

