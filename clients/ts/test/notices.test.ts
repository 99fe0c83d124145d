import { test } from "node:test"
import assert from "node:assert/strict"
import { newDeviceNotice } from "../src/client.js"

test("a new_device notice's coarse location reaches the event, and only a well-formed one", () => {
  const base = { type: "new_device", device_id: "d2", device_name: "Firefox on Linux", user_id: "u", created_at: "2026-12-02T07:00:00.000Z" }
  assert.deepEqual(newDeviceNotice({ ...base, location: { country: "DE", city: "Berlin" } }, "d2"), {
    kind: "new_device", deviceId: "d2", deviceName: "Firefox on Linux", createdAt: "2026-12-02T07:00:00.000Z", location: { country: "DE", city: "Berlin" },
  })
  assert.deepEqual(newDeviceNotice({ ...base, location: { country: "FR" } }, "d2").location, { country: "FR" })
  assert.equal(newDeviceNotice(base, "d2").location, undefined, "off by default: no location")
  assert.equal("location" in newDeviceNotice(base, "d2"), false)
  for (const bad of [{ country: "Germany" }, { city: "Berlin" }, "DE", null, { country: 49 }]) {
    assert.equal(newDeviceNotice({ ...base, location: bad }, "d2").location, undefined, JSON.stringify(bad))
  }
})
