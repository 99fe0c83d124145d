// The app's view of device verification alarms (core/trust.ts).
import { test } from "node:test"
import assert from "node:assert/strict"
import { addAlarm, emptyTrust, warningsFor } from "../src/core/trust"
import { plainError } from "../src/core/errors"
import { AttestationError, ClientError } from "@sovereign-im/client"
import { t } from "../src/strings"

const alice = { userId: "u-alice", username: "alice" }
const members = [
  { deviceId: "d-a1", ...alice },
  { deviceId: "d-ghost", ...alice },
  { deviceId: "d-b1", userId: "u-bob", username: "bob" },
]

test("a refused device warns in its conversation while it is a member, and only there", () => {
  let s = emptyTrust()
  s = addAlarm(s, { kind: "device_unverified", userId: alice.userId, username: "alice", deviceId: "d-ghost" }, "conv1")
  assert.deepEqual(warningsFor(s, "conv1", members), [{ kind: "unverified_device", username: "alice", deviceId: "d-ghost" }])
  assert.deepEqual(warningsFor(s, "conv2", members), [])
  // Removed from the conversation: the warning goes.
  assert.deepEqual(warningsFor(s, "conv1", members.filter((m) => m.deviceId !== "d-ghost")), [])
  // A refused key package (no conversation) changes no conversation.
  assert.deepEqual(addAlarm(emptyTrust(), { kind: "device_unverified", userId: "u", username: "x", deviceId: "d" }), emptyTrust())
})

test("an account reset warns in every conversation with that person", () => {
  const s = addAlarm(emptyTrust(), { kind: "account_reset", userId: alice.userId, username: "alice" })
  assert.deepEqual(warningsFor(s, "conv1", members), [{ kind: "account_reset", username: "alice" }])
  assert.deepEqual(warningsFor(s, "conv2", members.slice(2)), [], "not where alice is not a member")
  assert.match(t.accountResetWarning("alice"), /alice's account was recovered by an admin — compare safety codes/)
  const u = addAlarm(emptyTrust(), { kind: "passkey_unapproved", userId: alice.userId, username: "alice" })
  assert.deepEqual(warningsFor(u, "conv1", members), [{ kind: "passkey_unapproved", username: "alice" }])
})

test("verification refusals read as plain words", () => {
  assert.equal(plainError(new ClientError("unverified_device_in_group", "x")), t.errUnverifiedDevice)
  assert.equal(plainError(new AttestationError("binding_mismatch", "x")), t.errBindingMismatch)
  assert.equal(plainError(new AttestationError("approval_mismatch", "x")), t.errApproval)
})
