// Passkey-attested devices (issue #18, item 1; docs/verification.md)
// against the real binary, with a deliberately misbehaving server:
//
// (a) a device of Alice whose key no passkey approved (signed in without a
//     binding, as the server could make one) — Bob's client never adds its
//     key package, reports it, and refuses to send in a group whose commit
//     or Welcome holds it, until it is removed;
// (b) a passkey added to Alice's account without approval (the directory,
//     key-package claims Bob's client receives are rewritten at its fetch
//     to serve it and a device it bound) — reported, device refused;
// (c) an account reset by an admin's recovery invite — account_reset;
// (d) honest runs: several users and devices, a second device, a passkey
//     added with approval and a device signed in with it — no alarm.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import { randomBytes } from "@noble/hashes/utils.js"
import { ServerProcess } from "./helpers/server.js"
import { SovereignClient, type ClientEvent } from "../src/client.js"
import { ClientStore, MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { fromBase64, toBase64, toBase64url, toHex, utf8 } from "../src/bytes.js"
import { MlsClient } from "../src/mls.js"
import { ClientError } from "../src/device-checks.js"
import { AttestationError } from "../src/attest.js"
import type { DeviceAlarm } from "../src/attest-verifier.js"
import type { RequestOptionsJSON } from "../src/webauthn.js"
import { bindDevice, newPasskey, served } from "./helpers/attest.js"

const cleanups: (() => Promise<void>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

class App {
  received: string[] = []
  joined = new Set<string>()
  alarms: DeviceAlarm[] = []
  private ctrl = new AbortController()
  private loop?: Promise<void>
  constructor(
    readonly name: string,
    readonly client: SovereignClient,
  ) {
    client.on((e: ClientEvent) => {
      if (e.result.kind === "application") this.received.push(utf8.decode(e.result.plaintext))
      if (e.result.kind === "joined") this.joined.add(toHex(e.result.groupId))
    })
    client.onDeviceUnverified((a) => void this.alarms.push(a))
  }
  start() {
    this.loop = this.client.run(this.ctrl.signal, { transport: "sse" }).catch(() => {})
  }
  async stop() {
    if (this.ctrl.signal.aborted) return
    this.ctrl.abort()
    await this.loop
    this.client.stop()
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** What the misbehaving layer at Bob's fetch adds to the answers about Alice (scenario b). */
interface Injection {
  user: string
  userId: string
  passkey: object
  device: object
  keyPackage: object
}

function misbehaving(inject: () => Injection | undefined): typeof fetch {
  return async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init)
    const res = await fetch(req.clone())
    const x = inject()
    if (!x || !res.ok) return res
    const path = new URL(req.url).pathname
    const isUser = path === `/v1/users/${x.user}` || path === `/v1/users/${x.userId}`
    const isClaim = path === `/v1/users/${x.user}/key-packages/claim` || path === `/v1/users/${x.userId}/key-packages/claim`
    if (!isUser && !isClaim) return res
    const body = (await res.json()) as Record<string, unknown[] | undefined>
    if (isUser) {
      body.passkeys = [...(body.passkeys ?? []), x.passkey]
      body.devices = [...(body.devices ?? []), x.device]
    } else {
      body.key_packages = [...(body.key_packages ?? []), x.keyPackage]
    }
    return new Response(JSON.stringify(body), { status: res.status, headers: { "content-type": "application/json" } })
  }
}

test("passkey-attested devices: injected devices and passkeys are refused and reported, a reset is reported, honest runs raise no alarm", { timeout: 600_000 }, async () => {
  const srv = await ServerProcess.start()
  cleanups.push(() => srv.cleanup())
  let injection: Injection | undefined
  const open = async (name: string, auth: SoftwareAuthenticator, f?: typeof fetch) => {
    const c = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: auth, fetch: f, rpId: "localhost", origins: [srv.origin] })
    const a = new App(name, c)
    cleanups.push(() => a.stop())
    return a
  }
  const register = async (name: string, invite: string, f?: typeof fetch) => {
    const auth = new SoftwareAuthenticator({ origin: srv.origin })
    const a = await open(name, auth, f)
    await a.client.register({ inviteCode: invite, username: name, displayName: name, deviceName: name + "'s laptop" })
    await a.client.replenishKeyPackages()
    return { app: a, auth }
  }
  const signIn = async (name: string, auth: SoftwareAuthenticator, device: string) => {
    const a = await open(name + "/" + device, auth)
    await a.client.login({ username: name, deviceName: device })
    await a.client.replenishKeyPackages()
    return a
  }

  const root = await register("root", srv.adminInvite!)
  const alice = await register("alice", await srv.invite())
  const bob = await register("bob", await srv.invite(), misbehaving(() => injection))
  const carol = await register("carol", await srv.invite())
  const alicePhone = await signIn("alice", alice.auth, "alice's phone")
  const bobPhone = await signIn("bob", bob.auth, "bob's phone")
  const all = [root.app, alice.app, alicePhone, bob.app, bobPhone, carol.app]
  for (const a of all) a.start()
  for (const a of [alice.app, alicePhone, bob.app, bobPhone, carol.app]) {
    assert.equal(await a.client.deviceBindingNeeded(), false, `${a.name}'s device is bound`)
    assert.equal(await a.client.verifyOwnDevice(), true, `${a.name}'s device verifies`)
  }

  // (d) Honest: Bob's group with Alice (two devices) and Carol.
  const g1 = await bob.app.client.createGroup()
  const added = await bob.app.client.addMembers(g1, ["alice", "carol", "bob"])
  assert.deepEqual(new Set(added), new Set([alice.app.client.deviceId, alicePhone.client.deviceId, carol.app.client.deviceId, bobPhone.client.deviceId]))
  for (const a of [alice.app, alicePhone, carol.app, bobPhone]) await until(`${a.name} joins`, () => a.joined.has(toHex(g1)))
  await alice.app.client.send(g1, "hello from alice")
  await until("bob reads alice", () => bob.app.received.includes("hello from alice"))

  // Alice adds a passkey (a security key), approved by her first one, and signs in a tablet with it.
  const key2 = new SoftwareAuthenticator({ origin: srv.origin })
  let approvals = 0
  await alice.app.client.addPasskey({ name: "security key", authenticator: key2, onApprove: () => void approvals++ })
  assert.equal(approvals, 1)
  const tablet = await signIn("alice", key2, "alice's tablet")
  tablet.start()
  all.push(tablet)
  assert.equal(await tablet.client.verifyOwnDevice(), true)
  // The tablet joins Alice's conversations by external commit: every member checks the leaf it adds.
  assert.equal((await tablet.client.joinMyGroups()).length, 1)
  await tablet.client.send(g1, "from the tablet")
  for (const a of [bob.app, carol.app, alice.app]) await until(`${a.name} reads the tablet`, () => a.received.includes("from the tablet"))
  await bob.app.client.send(g1, "all good")
  await until("carol reads bob", () => carol.app.received.includes("all good"))
  for (const a of all) assert.deepEqual(a.alarms, [], `${a.name} raised no alarm in the honest run`)
  const mine = await alice.app.client.verifyMyDevices()
  assert.equal(mine.length, 3)
  assert.ok(mine.every((d) => d.check.ok), "all of Alice's devices verify")

  // (a) The server makes a device for Alice that no passkey approved (a
  // sign-in without a binding), with key packages of its own.
  const begin = await (await fetch(srv.url + "/v1/auth/login/begin", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "alice" }) })).json() as { ceremony_id: string; options: RequestOptionsJSON }
  const cred = await alice.auth.get(begin.options)
  const grantRes = await fetch(srv.url + "/v1/auth/login/finish", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ceremony_id: begin.ceremony_id, credential: cred, device_name: "ghost" }) })
  assert.equal(grantRes.status, 200, await grantRes.clone().text())
  const grant = (await grantRes.json()) as { token: string; device_id: string }
  const ghostId = grant.device_id
  const ghost = await MlsClient.open(ghostId, new ClientStore(new MemoryKeyValueStore()))
  const ghostKps = await ghost.generateKeyPackages(3)
  const up = await fetch(srv.url + "/v1/key-packages", { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${grant.token}` }, body: JSON.stringify({ key_packages: ghostKps.map((k) => toBase64(k.keyPackage)) }) })
  assert.ok(up.ok, await up.clone().text())

  // a1: Bob adds Alice to a new group: the ghost's key package is claimed, never added.
  const g2 = await bob.app.client.createGroup()
  const added2 = await bob.app.client.addMembers(g2, ["alice"])
  assert.ok(!added2.includes(ghostId), "the ghost is never added")
  assert.equal(added2.length, 3)
  assert.ok(!(await bob.app.client.group(g2)).members!.some((m) => m.device_id === ghostId))
  assert.deepEqual(bob.app.alarms.map((a) => [a.kind, a.deviceId, a.where, a.reason]), [["device_unverified", ghostId, "key_package", "unbound"]])

  // a2: Carol's client is made to add it anyway (a claim and a commit that bypass her checks): Bob refuses to send there.
  const claimGhost = async () => {
    const r = await carol.app.client.api.POST("/v1/users/{user}/key-packages/claim", { params: { path: { user: "alice" } }, body: { cipher_suite: 1 } })
    const k = (r.data?.key_packages ?? []).find((x) => x.device_id === ghostId)
    assert.ok(k, "the server hands out the ghost's key package")
    return fromBase64(k.key_package)
  }
  const ghostKp = await claimGhost()
  await carol.app.client.commit(g1, async () => ({ add: [ghostKp] }))
  await until("bob reports the ghost in g1", () => bob.app.alarms.some((a) => a.deviceId === ghostId && a.where === "commit"))
  await assert.rejects(bob.app.client.send(g1, "to the ghost?"), (e: unknown) => e instanceof ClientError && e.code === "unverified_device_in_group")
  assert.deepEqual(await bob.app.client.unverifiedDevices(g1), [ghostId])
  // Removing the device lifts the refusal.
  await bob.app.client.removeDevices(g1, [ghostId])
  assert.deepEqual(await bob.app.client.unverifiedDevices(g1), [])
  await bob.app.client.send(g1, "ghost gone")
  await until("alice reads bob", () => alice.app.received.includes("ghost gone"))

  // a3: a Welcome whose tree holds the ghost.
  const g3 = await carol.app.client.createGroup()
  const ghostKp3 = await claimGhost()
  await carol.app.client.commit(g3, async () => ({ add: [ghostKp3] }))
  await carol.app.client.addMembers(g3, ["bob"])
  await until("bob joins g3", () => bob.app.joined.has(toHex(g3)))
  await until("bob reports the ghost in g3", () => bob.app.alarms.some((a) => a.deviceId === ghostId && a.where === "welcome"))
  await assert.rejects(bob.app.client.send(g3, "no"), (e: unknown) => e instanceof ClientError && e.code === "unverified_device_in_group")

  // (b) The server serves, to Bob only, a passkey for Alice that no passkey of hers approved, a device it bound and its key package.
  const rogue = await newPasskey("alice", srv.origin)
  const rogueId = randomUUID()
  const rogueMls = await MlsClient.open(rogueId, new ClientStore(new MemoryKeyValueStore()))
  const [rogueKp] = await rogueMls.generateKeyPackages(1)
  const aliceUser = await bob.app.client.lookupUser("alice")
  injection = {
    user: "alice",
    userId: aliceUser.id,
    passkey: served(rogue),
    device: { id: rogueId, name: "rogue", created_at: new Date().toISOString(), signature_key: toBase64url(rogueMls.signatureKey), binding: await bindDevice(rogue, rogueMls.signatureKey, rogueId) },
    keyPackage: { device_id: rogueId, key_package: toBase64(rogueKp!.keyPackage), last_resort: false, ref: toBase64(rogueKp!.ref) },
  }
  await new Promise((r) => setTimeout(r, 5100)) // Bob's directory cache
  const g4 = await bob.app.client.createGroup()
  const added4 = await bob.app.client.addMembers(g4, ["alice"])
  assert.ok(!added4.includes(rogueId), "the rogue device is never added")
  const rogueAlarms = bob.app.alarms.filter((a) => a.deviceId === rogueId || a.credentialId === toBase64url(rogue.credentialId))
  assert.deepEqual(rogueAlarms.map((a) => [a.kind, a.reason]), [["passkey_unapproved", "unapproved"], ["device_unverified", "untrusted_passkey"]])
  injection = undefined

  // A device signed in before bindings existed (the unbound device above,
  // with its session) binds itself once, with one passkey prompt.
  const legacyStore = new ClientStore(new MemoryKeyValueStore())
  await legacyStore.putSession({ token: grant.token, userId: aliceUser.id, deviceId: ghostId, username: "alice" })
  const legacy = await SovereignClient.open({ baseUrl: srv.url, storage: legacyStore, authenticator: alice.auth })
  assert.equal(await legacy.deviceBindingNeeded(), true)
  assert.equal(await legacy.verifyOwnDevice(), false)
  await legacy.bindDevice()
  assert.equal(await legacy.deviceBindingNeeded(), false)
  assert.equal(await legacy.verifyOwnDevice(), true)

  // A server that asks the sign-in to sign a challenge for another key is refused before the authenticator is asked.
  let asked = 0
  const counting = new SoftwareAuthenticator({ origin: srv.origin, credentials: alice.auth.credentials() })
  const countingAuth = { create: counting.create.bind(counting), get: (o: Parameters<SoftwareAuthenticator["get"]>[0]) => (asked++, counting.get(o)) }
  const swapNonce: typeof fetch = async (input, init) => {
    const res = await fetch(input, init)
    const url = input instanceof Request ? input.url : String(input)
    if (!url.endsWith("/v1/auth/login/begin") || !res.ok) return res
    const body = (await res.json()) as { device_binding?: { nonce: string } }
    if (body.device_binding) body.device_binding.nonce = toBase64url(randomBytes(32))
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } })
  }
  const tricked = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: countingAuth, fetch: swapNonce })
  await assert.rejects(tricked.login({ username: "alice", deviceName: "tricked" }), (e: unknown) => e instanceof AttestationError && e.code === "binding_mismatch")
  assert.equal(asked, 0, "the authenticator was never asked")

  // (c) An admin recovers Alice's account: her new passkey has no approval; peers see an account reset.
  const su = await root.app.client.api.POST("/v1/auth/step-up/begin", { body: { operation: "recovery_invite", user_id: aliceUser.id } })
  let stepUp: string | undefined
  if (su.response.ok) {
    const sb = su.data as unknown as { ceremony_id: string; options: RequestOptionsJSON }
    const c = await root.auth.get(sb.options)
    const fin = await root.app.client.api.POST("/v1/auth/step-up/finish", { body: { ceremony_id: sb.ceremony_id, credential: c as never } })
    stepUp = (fin.data as { step_up: string } | undefined)?.step_up
  }
  const inv = await root.app.client.api.POST("/v1/admin/users/{id}/recovery-invite", {
    params: { path: { id: aliceUser.id }, header: stepUp ? { "Sovereign-Step-Up": stepUp } : {} },
    body: { expires_in_hours: 1 },
  })
  assert.ok(inv.response.ok, `recovery invite: ${inv.response.status} ${JSON.stringify(inv.error)}`)
  const recovered = await open("alice (recovered)", new SoftwareAuthenticator({ origin: srv.origin }))
  await recovered.client.recover({ inviteCode: inv.data!.code, deviceName: "alice's new laptop" })
  await recovered.client.replenishKeyPackages()
  assert.equal(await recovered.client.verifyOwnDevice(), true)
  await new Promise((r) => setTimeout(r, 5100)) // Bob's directory cache
  const g5 = await bob.app.client.createGroup()
  const added5 = await bob.app.client.addMembers(g5, ["alice"])
  assert.deepEqual(added5, [recovered.client.deviceId], "the recovered device verifies after the reset")
  const resets = bob.app.alarms.filter((a) => a.kind === "account_reset")
  assert.deepEqual(resets.map((a) => [a.username, a.reason]), [["alice", "recovered"]])
  assert.equal(carol.app.alarms.filter((a) => a.kind === "account_reset").length, 0, "Carol has not met the reset yet")
})
