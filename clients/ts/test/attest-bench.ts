// What device verification costs (docs/verification.md): run with
//   cd clients/ts && ./node_modules/.bin/tsc -p . && node dist/test/attest-bench.js
// (not a test file: node --test does not pick it up). Prints the median of
// 1,000 single-device verifications (distinct devices, so no cached result;
// the passkey's imported key is cached as in the client) and of 50 Welcome
// checks of a 20-device group (5 users × 4 devices, directory lookups
// answered from memory: network time excluded).
import { randomBytes } from "@noble/hashes/utils.js"
import { toBase64 } from "../src/bytes.js"
import { ClientStore, MemoryKeyValueStore } from "../src/storage.js"
import { DeviceVerifier, type ServedUser } from "../src/attest-verifier.js"
import { DeviceChecks } from "../src/device-checks.js"
import type { GroupMember } from "../src/mls.js"
import { ORIGIN, RP_ID, bindDevice, newPasskey, served } from "./helpers/attest.js"

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const dev = (u: number, n: number) => `0190c3f2-7a5b-7c3d-8e9f-${(u * 1000 + n).toString(16).padStart(12, "0")}`

async function main() {
  const pk = await newPasskey()
  const N = 1000
  const devices = []
  for (let i = 0; i < N; i++) {
    const key = randomBytes(32)
    devices.push({ id: dev(0, i), key, binding: await bindDevice(pk, key, dev(0, i)) })
  }
  const user: ServedUser = { id: "u0", username: "u0", passkeys: [served(pk)], devices: devices.map((d) => ({ id: d.id, signature_key: toBase64(d.key), binding: d.binding })) }
  const v = new DeviceVerifier(new ClientStore(new MemoryKeyValueStore()), { rpId: RP_ID, origins: [ORIGIN] })
  await v.verifyDevice(user, devices[0]!.id, devices[0]!.key) // warm: pin, import
  const times: number[] = []
  for (const d of devices.slice(1)) {
    const t0 = performance.now()
    const r = await v.verifyDevice(user, d.id, d.key)
    times.push(performance.now() - t0)
    if (!r.ok) throw new Error("did not verify")
  }
  const t1 = performance.now()
  await v.verifyDevice(user, devices[1]!.id, devices[1]!.key)
  const cached = performance.now() - t1
  console.log(`per device: median ${(median(times) * 1000).toFixed(0)} µs over ${times.length} verifications; cached again: ${(cached * 1000).toFixed(0)} µs`)

  // A Welcome of 20 devices: 5 users with 4 devices each.
  const users: ServedUser[] = []
  const leaves: GroupMember[] = []
  for (let u = 1; u <= 5; u++) {
    const p = await newPasskey("u" + u)
    const ds = []
    for (let n = 0; n < 4; n++) {
      const key = randomBytes(32)
      ds.push({ id: dev(u, n), signature_key: toBase64(key), binding: await bindDevice(p, key, dev(u, n)) })
      leaves.push({ leafIndex: leaves.length, deviceId: dev(u, n), signatureKey: key })
    }
    users.push({ id: "u" + u, username: "u" + u, passkeys: [served(p)], devices: ds })
  }
  const roster = leaves.map((l) => ({ device_id: l.deviceId, user_id: "u" + (Math.floor(parseInt(l.deviceId.slice(-12), 16) / 1000)) }))
  const welcome: number[] = []
  for (let i = 0; i < 50; i++) {
    // A fresh client each time: nothing cached, first contact with every user.
    const store = new ClientStore(new MemoryKeyValueStore())
    const checks = new DeviceChecks(
      new DeviceVerifier(store, { rpId: RP_ID, origins: [ORIGIN] }),
      store,
      async (id) => users.find((u) => u.id === id)!,
      async () => roster,
    )
    const t0 = performance.now()
    const failing = await checks.leaves(randomBytes(32), leaves, "welcome")
    welcome.push(performance.now() - t0)
    if (failing.length) throw new Error("welcome did not verify")
  }
  console.log(`per Welcome of 20 devices (5 users, first contact, fresh client): median ${median(welcome).toFixed(2)} ms over ${welcome.length}`)
}

await main()
