import { test } from "node:test"
import assert from "node:assert/strict"
import { randomBytes } from "@noble/hashes/utils.js"
import { toBase64 } from "../src/bytes.js"
import { ClientStore, MemoryKeyValueStore } from "../src/storage.js"
import { DeviceVerifier, type DeviceAlarm, type ServedDevice, type ServedUser } from "../src/attest-verifier.js"
import { ORIGIN, RP_ID, approve, bindDevice, newPasskey, served } from "./helpers/attest.js"

const ALICE = "0190c3f2-7a5b-7c3d-8e9f-00000000a11c"
const dev = (n: number) => `0190c3f2-7a5b-7c3d-8e9f-${n.toString(16).padStart(12, "0")}`

function verifier(store: ClientStore): { v: DeviceVerifier; alarms: DeviceAlarm[] } {
  const alarms: DeviceAlarm[] = []
  return { v: new DeviceVerifier(store, { rpId: RP_ID, origins: [ORIGIN], report: (a) => alarms.push(a) }), alarms }
}

test("a device bound by a pinned passkey verifies; a changed key, device id, nonce or an unbound device does not", async () => {
  const store = new ClientStore(new MemoryKeyValueStore())
  const { v, alarms } = verifier(store)
  const root = await newPasskey()
  const key = randomBytes(32)
  const d1: ServedDevice = { id: dev(1), signature_key: toBase64(key), binding: await bindDevice(root, key, dev(1)) }
  const user: ServedUser = { id: ALICE, username: "alice", passkeys: [served(root)], devices: [d1, { id: dev(2) }] }
  assert.deepEqual(await v.check(user, dev(1), key), { ok: true, credentialId: served(root).credential_id })
  assert.ok((await store.getPins(ALICE))?.passkeys.length === 1, "first contact pins the passkey set")

  const other = randomBytes(32)
  // The server serves the leaf's key as the device's key, but the binding is for another key.
  const swapped: ServedUser = { ...user, devices: [{ ...d1, signature_key: toBase64(other) }] }
  assert.equal((await v.verifyDevice(swapped, dev(1), other)).ok, false)
  assert.equal((await v.verifyDevice({ ...user, devices: [{ ...d1, signature_key: undefined }] }, dev(1), other)).ok, false)
  // Another device id with the same binding.
  assert.equal((await v.verifyDevice({ ...user, devices: [{ ...d1, id: dev(3) }] }, dev(3), key)).ok, false)
  // Another nonce.
  const b = { ...d1.binding!, nonce: toBase64(randomBytes(32)) }
  assert.deepEqual(await v.verifyDevice({ ...user, devices: [{ ...d1, binding: b }] }, dev(1), key), {
    ok: false,
    reason: "wrong_challenge",
    detail: "the assertion signs another challenge",
  })
  assert.equal((await v.check(user, dev(2), key, { where: "welcome" })).ok, false)
  assert.equal((await v.check(user, dev(9), key)).ok, false)
  assert.deepEqual(alarms.map((a) => [a.kind, a.deviceId, a.reason]), [
    ["device_unverified", dev(2), "unbound"],
    ["device_unverified", dev(9), "unknown_device"],
  ])
})

test("pins survive a restart; a passkey added later needs an approval by a trusted one", async () => {
  const store = new ClientStore(new MemoryKeyValueStore())
  const root = await newPasskey()
  const k1 = randomBytes(32)
  const user: ServedUser = {
    id: ALICE,
    username: "alice",
    passkeys: [served(root)],
    devices: [{ id: dev(1), binding: await bindDevice(root, k1, dev(1)) }],
  }
  assert.equal((await verifier(store).v.check(user, dev(1), k1)).ok, true)

  // After a restart (a new verifier on the same storage): Alice added a passkey, approved by the root.
  const second = await newPasskey()
  const third = await newPasskey()
  const k2 = randomBytes(32)
  const k3 = randomBytes(32)
  const later: ServedUser = {
    ...user,
    // third is approved by second, which is approved by root: a chain.
    passkeys: [served(third, { approval: await approve(second, third) }), served(root), served(second, { approval: await approve(root, second) })],
    devices: [...user.devices!, { id: dev(2), binding: await bindDevice(second, k2, dev(2)) }, { id: dev(3), binding: await bindDevice(third, k3, dev(3)) }],
  }
  const { v, alarms } = verifier(store)
  assert.equal((await v.check(later, dev(2), k2)).ok, true)
  assert.equal((await v.check(later, dev(3), k3)).ok, true)
  assert.equal((await store.getPins(ALICE))?.passkeys.length, 3)
  assert.deepEqual(alarms, [])

  // The server adds a passkey of its own (no approval, not a recovery) and binds a device with it.
  const rogue = await newPasskey()
  const k4 = randomBytes(32)
  const injected: ServedUser = {
    ...later,
    passkeys: [...later.passkeys!, served(rogue)],
    devices: [...later.devices!, { id: dev(4), binding: await bindDevice(rogue, k4, dev(4)) }],
  }
  const r = verifier(store)
  assert.deepEqual(await r.v.check(injected, dev(4), k4, { where: "key_package" }), {
    ok: false,
    reason: "untrusted_passkey",
    detail: `device ${dev(4)} was bound by a passkey alice never approved`,
  })
  assert.deepEqual(r.alarms.map((a) => [a.kind, a.reason]), [["passkey_unapproved", "unapproved"], ["device_unverified", "untrusted_passkey"]])
  assert.equal((await r.v.check(injected, dev(1), k1)).ok, true, "the honest devices still verify")

  // An approval that does not verify (made for another key, or self-approved) is refused too.
  const forged = await newPasskey()
  const k5 = randomBytes(32)
  const badApproval = { ...(await approve(root, rogue)), nonce: toBase64(randomBytes(32)) }
  const forgedUser: ServedUser = {
    ...later,
    passkeys: [...later.passkeys!, served(forged, { approval: await approve(root, rogue) }), served(rogue, { approval: badApproval })],
    devices: [{ id: dev(5), binding: await bindDevice(forged, k5, dev(5)) }, { id: dev(4), binding: await bindDevice(rogue, k4, dev(4)) }],
  }
  const f = verifier(store)
  assert.equal((await f.v.check(forgedUser, dev(5), k5)).ok, false)
  assert.equal((await f.v.check(forgedUser, dev(4), k4)).ok, false)
  assert.deepEqual(f.alarms.filter((a) => a.kind === "passkey_unapproved").map((a) => a.reason).sort(), ["wrong_challenge", "wrong_challenge"])
  const self = await newPasskey()
  const selfUser: ServedUser = { ...later, passkeys: [...later.passkeys!, served(self, { approval: await approve(self, self) })] }
  const s = verifier(store)
  await s.v.trustedPasskeys(selfUser)
  assert.deepEqual(s.alarms.map((a) => [a.kind, a.reason]), [["passkey_unapproved", "approver_untrusted"]])
  assert.equal((await store.getPins(ALICE))?.passkeys.length, 3, "nothing unapproved was pinned")
})

test("a recovered passkey is an account reset: reported once, then pinned afresh", async () => {
  const store = new ClientStore(new MemoryKeyValueStore())
  const root = await newPasskey()
  const k1 = randomBytes(32)
  const before: ServedUser = { id: ALICE, username: "alice", passkeys: [served(root)], devices: [{ id: dev(1), binding: await bindDevice(root, k1, dev(1)) }] }
  assert.equal((await verifier(store).v.check(before, dev(1), k1)).ok, true)

  const rec = await newPasskey()
  const k2 = randomBytes(32)
  const after: ServedUser = {
    id: ALICE,
    username: "alice",
    passkeys: [served(rec, { recovered: true })],
    devices: [{ id: dev(2), binding: await bindDevice(rec, k2, dev(2)) }],
  }
  const { v, alarms } = verifier(store)
  assert.equal((await v.check(after, dev(2), k2)).ok, true)
  assert.deepEqual(alarms.map((a) => [a.kind, a.username]), [["account_reset", "alice"]])
  const pins = await store.getPins(ALICE)
  assert.equal(pins?.resets, 1)
  assert.equal(pins?.passkeys.length, 1)
  // The old root's devices are gone with the reset.
  assert.equal((await v.verifyDevice({ ...before, passkeys: after.passkeys }, dev(1), k1)).ok, false)
  // Next start: no new alarm.
  const again = verifier(store)
  assert.equal((await again.v.check(after, dev(2), k2)).ok, true)
  assert.deepEqual(again.alarms, [])
})
