// Unit tests of the app's pure parts (node --test, bundled by test.mjs):
// envelopes and their padding, device names, plain-words errors.
import { test } from "node:test"
import assert from "node:assert/strict"
import { ApiError } from "@sovereign-im/client"
import { decodeEnvelope, encodeEnvelope } from "../src/core/envelope"
import { plainError } from "../src/core/errors"
import { deviceName } from "../src/core/passkeys"
import { t } from "../src/strings"

test("envelopes pad to size buckets and decode back", () => {
  const sizes = new Set<number>()
  for (const text of ["", "hi", "x".repeat(150), "é".repeat(100)]) {
    const bytes = encodeEnvelope({ type: "text", id: "id-1", t: 1, text })
    sizes.add(bytes.length)
    assert.deepEqual(decodeEnvelope(bytes), { type: "text", id: "id-1", t: 1, text })
  }
  assert.deepEqual([...sizes], [256], "short texts all become 256 bytes")
  assert.equal(encodeEnvelope({ type: "text", id: "i", t: 1, text: "y".repeat(300) }).length, 1024)
  assert.equal(encodeEnvelope({ type: "text", id: "i", t: 1, text: "y".repeat(5000) }).length, 16384)
})

test("meta envelopes keep only a valid colour and a bounded name", () => {
  const m = decodeEnvelope(encodeEnvelope({ type: "meta", id: "m", t: 2, name: "n".repeat(300), color: "red" }))
  assert.equal(m?.type, "meta")
  assert.equal(m?.type === "meta" && m.name?.length, 100)
  assert.equal(m?.type === "meta" ? m.color : "x", undefined)
})

test("anything else does not decode", () => {
  const enc = new TextEncoder()
  for (const s of ["", "not json", "{}", '{"v":2,"type":"text","id":"a","t":1,"text":"x"}', '{"v":1,"type":"text","id":1,"t":1,"text":"x"}', '{"v":1,"type":"image","id":"a","t":1}']) {
    assert.equal(decodeEnvelope(enc.encode(s)), undefined, s)
  }
})

test("device names say browser and system", () => {
  const cases: [string, string][] = [
    ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", "Chrome on Linux"],
    ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iOS"],
    ["Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36", "Chrome on Android"],
    ["Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0", "Firefox on Windows"],
    ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0", "Edge on macOS"],
  ]
  for (const [ua, want] of cases) assert.equal(deviceName(ua), want)
})

test("server refusals and passkey failures become sentences", () => {
  const api = (status: number, code: string, operation = "registerFinish") => new ApiError(status, { status, code }, operation)
  assert.equal(plainError(api(403, "invite_invalid")), t.errInviteInvalid)
  assert.equal(plainError(api(409, "username_taken")), t.errUsernameTaken)
  assert.equal(plainError(api(410, "ceremony_expired")), t.errCeremonyExpired)
  assert.equal(plainError(new ApiError(429, { status: 429, retry_after: 7 }, "loginBegin")), t.errRateLimited(7))
  assert.equal(plainError(Object.assign(new Error("x"), { name: "NotAllowedError" })), t.errPasskeyCancelled)
  assert.equal(plainError(Object.assign(new Error("x"), { code: "ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED" })), t.errPasskeyExists)
  assert.equal(plainError(new TypeError("Failed to fetch")), t.errOffline)
})

test("attachment envelopes keep a well-formed pointer only", () => {
  const key = Buffer.alloc(32, 1).toString("base64")
  const digest = Buffer.alloc(32, 2).toString("base64")
  const file = { id: "att-1", key, digest, size: 10, encryptedSize: 64, mime: "image/png", name: "a/b\u0000.png", width: 4, height: 3,
    thumbnail: { id: "att-2", key, digest, size: 5, encryptedSize: 32, mime: "image/webp" } }
  const e = decodeEnvelope(encodeEnvelope({ type: "attachment", id: "x", t: 1, file, voice: true }))
  assert.equal(e?.type, "attachment")
  if (e?.type !== "attachment") return
  assert.equal(e.voice, true)
  assert.equal(e.file.name, "a_b_.png", "no path separators or control characters in a name")
  assert.equal(e.file.thumbnail?.id, "att-2")
  assert.equal(encodeEnvelope({ type: "attachment", id: "x", t: 1, file }).length, 1024, "padded to a bucket")
  for (const bad of [{ ...file, id: "../x" }, { ...file, key: "short" }, { ...file, size: -1 }, { ...file, encryptedSize: 1 }, { ...file, digest: 5 }]) {
    assert.equal(decodeEnvelope(encodeEnvelope({ type: "attachment", id: "x", t: 1, file: bad as never })), undefined, JSON.stringify(bad))
  }
  const noThumb = decodeEnvelope(encodeEnvelope({ type: "attachment", id: "x", t: 1, file: { ...file, thumbnail: { id: 3 } as never, mime: "<b>" } }))
  assert.ok(noThumb?.type === "attachment" && noThumb.file.thumbnail === undefined && noThumb.file.mime === undefined)
})

test("routes: a recovery link opens recovery with its code, in both spellings", async () => {
  const { parse } = await import("../src/ui/routes")
  assert.deepEqual(parse("#/recover?code=k3xq-7b2m"), { v: "recover", code: "k3xq-7b2m" })
  assert.deepEqual(parse("#/recover#k3xq-7b2m"), { v: "recover", code: "k3xq-7b2m" })
  assert.deepEqual(parse("#/recover"), { v: "recover", code: "" })
  assert.deepEqual(parse("#/goodbye"), { v: "goodbye" })
  assert.deepEqual(parse("#abcd-efgh"), { v: "join", code: "abcd-efgh" }, "an invite link still opens registration")
  assert.deepEqual(parse("#/c/AbC_-1"), { v: "chat", id: "AbC_-1" })
})

test("usernames as typed are trimmed, lose a leading @ and are case-folded", async () => {
  const { normalUsername } = await import("../src/core/people")
  assert.equal(normalUsername("  @Bob.M "), "bob.m")
  assert.equal(normalUsername("alice"), "alice")
})

test("account notices become banners, except for the device that made the change", async () => {
  const { alertFor } = await import("../src/core/notices")
  const ev = (result: unknown) => ({ seq: 1, eventId: "e1", kind: "notice", result, event: { serverTime: "2026-12-02T07:00:00Z" } }) as never
  const nd = alertFor(ev({ kind: "new_device", deviceId: "d2", deviceName: "Firefox on Android", createdAt: "2026-12-02T07:00:00Z" }), "d1")
  assert.equal(nd?.review, "devices")
  assert.match(nd!.text, /^A new device signed in: Firefox on Android, .+ — not you\?$/)
  assert.equal(alertFor(ev({ kind: "new_device", deviceId: "d1", deviceName: "me", createdAt: "" }), "d1"), undefined, "not about myself")
  // With the server's --geoip-db the notice has a coarse location.
  const near = alertFor(ev({ kind: "new_device", deviceId: "d3", deviceName: "Firefox on Linux", createdAt: "2026-12-02T07:00:00Z", location: { country: "DE", city: "Berlin" } }), "d1")
  assert.match(near!.text, /^A new device signed in: Firefox on Linux, near Berlin, Germany, .+ — not you\?$/)
  const country = alertFor(ev({ kind: "new_device", deviceId: "d3", deviceName: "phone", createdAt: "", location: { country: "FR" } }), "d1")
  assert.match(country!.text, /^A new device signed in: phone, near France/)
  assert.doesNotMatch(nd!.text, /near/, "no location, no near")
  const added = alertFor(ev({ kind: "notice", notice: { type: "passkey_added", name: "YubiKey", by_device_id: "d2" } }), "d1")
  assert.equal(added?.review, "settings")
  assert.match(added!.text, /^A passkey was added to your account: YubiKey/)
  assert.equal(alertFor(ev({ kind: "notice", notice: { type: "passkey_added", name: "YubiKey", by_device_id: "d1" } }), "d1"), undefined, "I added it here")
  const removed = alertFor(ev({ kind: "notice", notice: { type: "passkey_removed", name: "Old phone", reason: "recovery" } }), "d1")
  assert.match(removed!.text, /^A passkey was removed from your account: Old phone.*recovered by an admin/)
  assert.equal(alertFor(ev({ kind: "notice", notice: { type: "key_packages_low" } }), "d1"), undefined)
})

test("account refusals become sentences", () => {
  assert.equal(plainError(new ApiError(409, { code: "last_passkey" }, "deleteMyPasskey")), t.errLastPasskey)
  assert.equal(plainError(new ApiError(403, { code: "step_up_required" }, "deleteMe")), t.errStepUp)
  assert.equal(plainError(new ApiError(403, { code: "invite_invalid" }, "recoverBegin")), t.errRecoveryInvalid)
  assert.equal(plainError(new ApiError(403, { code: "invite_invalid" }, "registerBegin")), t.errInviteInvalid)
})
