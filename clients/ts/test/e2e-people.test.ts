// Issue 14 end to end, real MLS (ts-mls) through the real server: the
// directory, display names, a new device of Bob that is announced to his
// phone and joins his three groups by external commit, leaving a group (a
// self-Remove proposal another member's client commits, or the next
// sender's before its message), the last member
// leaving deletes the group, and a device away longer than --retention
// rejoins its group by itself after the feed's 410.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { ServerProcess } from "./helpers/server.js"
import { SovereignClient, type ClientEvent, type ResyncResult } from "../src/client.js"
import { MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { ApiError } from "../src/errors.js"
import { equal, toHex, utf8 } from "../src/bytes.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

class App {
  events: ClientEvent[] = []
  resyncs: ResyncResult[] = []
  private ctrl?: AbortController
  private loop?: Promise<void>
  loopError?: unknown
  client!: SovereignClient

  constructor(readonly name: string) {}

  static async open(name: string, srv: ServerProcess, auth = new SoftwareAuthenticator({ origin: srv.origin })): Promise<App> {
    const a = new App(name)
    a.client = await SovereignClient.open({
      baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: auth, autoRemoveMaxDelayMs: 200,
      onResync: (r) => a.resyncs.push(r),
    })
    a.client.on((e) => {
      a.events.push(e)
    })
    return a
  }

  texts(gid?: Uint8Array): string[] {
    return this.events.flatMap((e) =>
      e.result.kind === "application" && (!gid || equal(e.result.groupId, gid)) ? [utf8.decode(e.result.plaintext)] : [])
  }

  start() {
    this.ctrl = new AbortController()
    this.loop = this.client.run(this.ctrl.signal, { transport: "longpoll", pollTimeout: 2 }).catch((e) => {
      this.loopError = e
    })
  }

  async stop() {
    this.ctrl?.abort()
    await this.loop
    this.client.stop()
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

test("people: directory, display names, a new device joins by external commit, leaving, group deletion", { timeout: 240_000 }, async () => {
  const srv = await ServerProcess.start()
  cleanups.push(() => srv.cleanup())
  const alice = await App.open("alice", srv)
  const bobAuth = new SoftwareAuthenticator({ origin: srv.origin })
  const bob = await App.open("bob", srv, bobAuth)
  await alice.client.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "Alice's laptop" })
  await bob.client.register({ inviteCode: await srv.invite(), username: "bob", displayName: "Bob", deviceName: "Bob's phone" })
  for (const a of [alice, bob]) await a.client.replenishKeyPackages()

  // Directory: exact match only; unknown users are 404.
  const found = await alice.client.lookupUser("BOB")
  assert.equal(found.username, "bob")
  assert.deepEqual((found.devices ?? []).map((d) => d.id), [bob.client.deviceId])
  await assert.rejects(alice.client.lookupUser("bo"), (e) => e instanceof ApiError && e.status === 404)
  await assert.rejects(alice.client.searchUsers("bo"), (e) => e instanceof ApiError && e.status === 403)
  // Display names.
  assert.equal((await bob.client.setDisplayName("Bob Marley")).display_name, "Bob Marley")

  alice.start()
  bob.start()
  const gids: Uint8Array[] = []
  for (let i = 0; i < 3; i++) {
    const gid = await alice.client.createGroup()
    await alice.client.addMembers(gid, [found.username])
    gids.push(gid)
  }
  await until("bob joins three groups", () => bob.events.filter((e) => e.result.kind === "joined").length === 3)
  const members = (await alice.client.group(gids[0]!)).members ?? []
  assert.equal(members.find((m) => m.username === "bob")?.display_name, "Bob Marley")

  // Bob's new device: his phone is told, the new device is not.
  const laptop = await App.open("bob-laptop", srv, bobAuth)
  await laptop.client.login({ username: "bob", deviceName: "Bob's laptop" })
  await until("bob's phone gets a new_device notice", () =>
    bob.events.some((e) => e.result.kind === "new_device" && e.result.deviceId === laptop.client.deviceId && e.result.deviceName === "Bob's laptop"))
  const t0 = Date.now()
  const joined = await laptop.client.joinMyGroups()
  const joinMs = Date.now() - t0
  assert.deepEqual(joined.map(toHex).sort(), gids.map(toHex).sort())
  laptop.start()
  await laptop.client.replenishKeyPackages()
  try {
    await until("alice processed three external commits", () =>
      alice.events.filter((e) => e.result.kind === "commit" && e.result.committerDeviceId === laptop.client.deviceId).length === 3)
  } catch (e) {
    console.log(alice.events.map((x) => JSON.stringify({ kind: x.kind, r: x.result.kind, c: (x.result as { committerDeviceId?: string }).committerDeviceId, err: String((x.result as { error?: unknown }).error ?? "") })).join("\n"))
    throw e
  }
  for (const [i, gid] of gids.entries()) await alice.client.send(gid, `hello ${i}`)
  await until("the laptop reads new messages in all three groups", () => laptop.texts().length === 3)
  assert.deepEqual(laptop.texts().sort(), ["hello 0", "hello 1", "hello 2"])
  await until("the phone reads them too", () => bob.texts().length === 3)
  assert.ok(!laptop.events.some((e) => e.result.kind === "new_device"), "the new device is not told about itself")
  console.log(`external join of 3 groups by the new device: ${joinMs} ms`)

  // The laptop leaves group 0: another member's client commits its removal.
  const g0 = gids[0]!
  assert.equal(await laptop.client.leaveGroup(g0), false)
  await until("a member commits the laptop's removal", () =>
    [alice, bob].some((a) => a.events.some((e) => e.result.kind === "commit" && equal(e.result.groupId, g0) && e.result.removedDevices.includes(laptop.client.deviceId))))
  await until("alice and bob agree on the epoch", async () => (await alice.client.mls.epoch(g0)) === (await bob.client.mls.epoch(g0)))
  assert.ok(!(await alice.client.mls.members(g0)).some((m) => m.deviceId === laptop.client.deviceId))
  await alice.client.send(g0, "without the laptop")
  await until("bob reads it", () => bob.texts(g0).includes("without the laptop"))
  assert.ok(!laptop.texts().includes("without the laptop"))
  assert.ok(!(await laptop.client.mls.hasGroup(g0)))

  // A message right after a member left: MLS sends nothing in an epoch with
  // a proposal pending, so send commits the laptop's removal first. (Alice
  // and Bob are paused; Alice reads the proposal and her automatic commit
  // is cancelled, so the pending removal is certainly hers to commit.)
  const g1 = gids[1]!
  await alice.stop()
  await bob.stop()
  assert.equal(await laptop.client.leaveGroup(g1), false)
  await until("alice has the laptop's removal pending", async () => {
    await alice.client.catchUp()
    return (await alice.client.mls.pendingRemovals(g1)).length === 1
  })
  alice.client.stop()
  await alice.client.send(g1, "right after the laptop left")
  assert.deepEqual(await alice.client.mls.pendingRemovals(g1), [], "send committed the pending removal first")
  assert.ok(!(await alice.client.mls.members(g1)).some((m) => m.deviceId === laptop.client.deviceId))
  alice.start()
  bob.start()
  await until("bob reads it", () => bob.texts(g1).includes("right after the laptop left"))

  // Everyone leaves group 2: the last leave deletes it.
  const g2 = gids[2]!
  assert.equal(await laptop.client.leaveGroup(g2), false)
  await until("the laptop's removal from group 2 is committed", async () => (await alice.client.mls.pendingRemovals(g2)).length === 0 &&
    !(await alice.client.mls.members(g2)).some((m) => m.deviceId === laptop.client.deviceId))
  await until("bob's view agrees", async () => !(await bob.client.mls.members(g2)).some((m) => m.deviceId === laptop.client.deviceId))
  assert.equal(await bob.client.leaveGroup(g2), false)
  await until("bob's removal from group 2 is committed", async () => (await alice.client.mls.members(g2)).length === 1)
  assert.equal(await alice.client.leaveGroup(g2), true, "the last member's leave deletes the group")
  await assert.rejects(alice.client.group(g2), (e) => e instanceof ApiError && e.status === 403)

  for (const a of [alice, bob, laptop]) {
    await a.stop()
    assert.equal(a.loopError, undefined, `${a.name}'s feed loop failed: ${a.loopError}`)
  }
})

test("rejoin after 410: a device away longer than --retention rejoins its group by itself", { timeout: 240_000 }, async () => {
  const srv = await ServerProcess.start(["--retention", "3s", "--cleanup-interval", "1s"])
  cleanups.push(() => srv.cleanup())
  const alice = await App.open("alice", srv)
  const bob = await App.open("bob", srv)
  await alice.client.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "laptop" })
  await bob.client.register({ inviteCode: await srv.invite(), username: "bob", displayName: "Bob", deviceName: "phone" })
  await bob.client.replenishKeyPackages()
  alice.start()
  bob.start()
  const gid = await alice.client.createGroup()
  await alice.client.addMembers(gid, ["bob"])
  await until("bob joins", () => bob.events.some((e) => e.result.kind === "joined"))
  await alice.client.send(gid, "before")
  await until("bob reads it", () => bob.texts().includes("before"))

  // Bob goes away; messages and a commit he never sees expire.
  await bob.stop()
  await alice.client.send(gid, "while away")
  await alice.client.updateKeys(gid)
  await new Promise((r) => setTimeout(r, 6_000))

  bob.start()
  await until("bob rejoined by external commit", () => bob.resyncs.length > 0, 60_000)
  assert.deepEqual(bob.resyncs[0]!.rejoined.map(toHex), [toHex(gid)])
  assert.deepEqual(bob.resyncs[0]!.failed, [])
  await until("alice processed bob's rejoin", async () => (await alice.client.mls.epoch(gid)) === (await bob.client.mls.epoch(gid)))
  await alice.client.send(gid, "after")
  await until("bob reads messages again", () => bob.texts().includes("after"))
  await bob.client.send(gid, "back")
  await until("alice reads bob", () => alice.texts().includes("back"))
  assert.ok(!bob.texts().includes("while away"), "what expired stays lost")
  assert.equal((await alice.client.mls.members(gid)).length, 2, "bob's old leaf was replaced, not duplicated")
  for (const a of [alice, bob]) {
    await a.stop()
    assert.equal(a.loopError, undefined, `${a.name}'s feed loop failed: ${a.loopError}`)
  }
})
