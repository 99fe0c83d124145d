// The smoke flow an app developer would write, run from a fresh project that
// installed the packed tarball: it imports the package by name only.
// SOVEREIGN_URL, SOVEREIGN_ORIGIN, INVITE_ALICE, INVITE_BOB and STORE_DIR come
// from the environment. Prints one JSON line with what happened.
import assert from "node:assert/strict"
import * as sdk from "@sovereign-im/client"
import { SovereignClient, MemoryKeyValueStore, toHex } from "@sovereign-im/client"
import { FileKeyValueStore } from "@sovereign-im/client/node"
import { SoftwareAuthenticator, encodeCbor, decodeCbor } from "@sovereign-im/client/testing"

const env = (k) => {
  const v = process.env[k]
  if (!v) throw new Error(`${k} is not set`)
  return v
}
const baseUrl = env("SOVEREIGN_URL")
const origin = env("SOVEREIGN_ORIGIN")

// The main entry carries no test-only code.
for (const name of ["SoftwareAuthenticator", "encodeCbor", "decodeCbor", "FileKeyValueStore"]) {
  assert.equal(name in sdk, false, `${name} must not be exported from the main entry`)
}
assert.deepEqual(decodeCbor(encodeCbor(new Map([[1, "a"]]))), new Map([[1, "a"]]))
// Deep imports are closed by the exports map.
await assert.rejects(import("@sovereign-im/client/dist/src/cbor.js"), { code: "ERR_PACKAGE_PATH_NOT_EXPORTED" })

const alice = await SovereignClient.open({
  baseUrl, storage: new MemoryKeyValueStore(), authenticator: new SoftwareAuthenticator({ origin }),
})
const bob = await SovereignClient.open({
  baseUrl, storage: new FileKeyValueStore(env("STORE_DIR")), authenticator: new SoftwareAuthenticator({ origin }),
})
await alice.register({ inviteCode: env("INVITE_ALICE"), username: "alice", displayName: "Alice", deviceName: "laptop" })
await bob.register({ inviteCode: env("INVITE_BOB"), username: "bob", displayName: "Bob", deviceName: "phone" })
const uploaded = [await alice.replenishKeyPackages(), await bob.replenishKeyPackages()]

const received = new Promise((resolve) => {
  bob.on((e) => {
    if (e.result.kind === "application") resolve({ text: new TextDecoder().decode(e.result.plaintext), from: e.result.senderDeviceId, seq: e.seq })
  })
})
const joined = new Promise((resolve) => bob.on((e) => { if (e.result.kind === "joined") resolve(toHex(e.result.groupId)) }))
const stop = new AbortController()
const loop = bob.run(stop.signal, { transport: "sse" })

const groupId = await alice.createGroup()
const added = await alice.addMembers(groupId, ["bob"])
assert.equal(await joined, toHex(groupId))
const receipt = await alice.send(groupId, "hello from a packed tarball")
const timeout = setTimeout(() => { console.error("no message within 20 s"); process.exit(1) }, 20_000)
const msg = await received
clearTimeout(timeout)
const transport = bob.transport
await bob.flushAck()
stop.abort()
await loop
bob.stop()
alice.stop()
console.log(JSON.stringify({ uploaded, added, bobDevice: bob.deviceId, aliceDevice: alice.deviceId, receiptSeq: receipt.seq, msg, transport }))
