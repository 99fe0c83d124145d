// Passkey ceremonies of the SDK against the real sovereign binary: the
// software authenticator's attestation and assertions are verified by
// go-webauthn exactly as a browser's would be.
import { test, after, before } from "node:test"
import assert from "node:assert/strict"
import { ServerProcess } from "./helpers/server.js"
import { SovereignClient } from "../src/client.js"
import { MemoryKeyValueStore } from "../src/storage.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import { ApiError } from "../src/errors.js"

let srv: ServerProcess
before(async () => {
  srv = await ServerProcess.start()
})
after(async () => {
  await srv?.cleanup()
})

test("register with the bootstrap invite, log in by username and discoverably, log out", async () => {
  assert.ok(srv.adminInvite, "the first start prints an admin invite")
  const auth = new SoftwareAuthenticator({ origin: srv.origin })
  const kv = new MemoryKeyValueStore()
  const alice = await SovereignClient.open({ baseUrl: srv.url, storage: kv, authenticator: auth })
  const s = await alice.register({ inviteCode: srv.adminInvite, username: "alice", displayName: "Alice", deviceName: "Alice's laptop" })
  assert.equal(s.username, "alice")
  const me = await alice.api.GET("/v1/me", {})
  assert.equal(me.response.status, 200)
  assert.equal(me.data!.user.username, "alice")
  assert.equal(me.data!.device.id, s.deviceId)

  // The invite is single use.
  const other = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }) })
  await assert.rejects(other.register({ inviteCode: srv.adminInvite, username: "mallory", displayName: "M", deviceName: "x" }), (e: unknown) => e instanceof ApiError && e.status >= 400 && e.status < 500)

  // Same storage logs in again as the same device (keeps its MLS state).
  const again = await alice.login({ username: "alice" })
  assert.equal(again.deviceId, s.deviceId)
  assert.notEqual(again.token, s.token)
  // A new install (fresh storage) with the same passkey, discoverable: a new device.
  const laptop2 = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: auth })
  const s2 = await laptop2.login({ deviceName: "Alice's phone" })
  assert.equal(s2.userId, s.userId)
  assert.notEqual(s2.deviceId, s.deviceId)

  await laptop2.logout()
  const gone = await laptop2.api.GET("/v1/me", {})
  assert.equal(gone.response.status, 401)
  // A passkey the server does not know is refused.
  const stranger = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }) })
  await assert.rejects(stranger.login({ username: "alice" }), { name: "NotAllowedError" })
})

test("user verification is required: an authenticator without UV is refused, the invite stays usable", async () => {
  const invite = await srv.invite()
  const noUv = new SoftwareAuthenticator({ origin: srv.origin, userVerification: false })
  const c = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: noUv })
  await assert.rejects(c.register({ inviteCode: invite, username: "nouv", displayName: "No UV", deviceName: "d" }), (e: unknown) => e instanceof ApiError && e.status >= 400 && e.status < 500)
  assert.equal(c.signedIn, false)
  // The same invite still works with a verifying authenticator.
  const ok = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin: srv.origin }) })
  const s = await ok.register({ inviteCode: invite, username: "nouv", displayName: "UV after all", deviceName: "d" })
  assert.equal(s.username, "nouv")
})

test("wrong origin is refused", async () => {
  const invite = await srv.invite()
  const evil = new SoftwareAuthenticator({ origin: "http://localhost:1" })
  const c = await SovereignClient.open({ baseUrl: srv.url, storage: new MemoryKeyValueStore(), authenticator: evil })
  await assert.rejects(c.register({ inviteCode: invite, username: "eve", displayName: "Eve", deviceName: "d" }), (e: unknown) => e instanceof ApiError && e.status >= 400 && e.status < 500)
})
