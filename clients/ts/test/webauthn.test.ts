import { test } from "node:test"
import assert from "node:assert/strict"
import { p256 } from "@noble/curves/nist.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { SoftwareAuthenticator } from "../src/software-authenticator.js"
import {
  BrowserAuthenticator,
  parseAuthenticatorData,
  rpIdMatches,
  FLAG_AT,
  FLAG_UP,
  FLAG_UV,
  FLAG_BE,
  type CreationOptionsJSON,
} from "../src/webauthn.js"
import { decodeCbor, encodeCbor, type CborValue } from "../src/cbor.js"
import { concat, fromBase64url, toBase64url, utf8 } from "../src/bytes.js"

const origin = "http://localhost:8080"
const userId = toBase64url(new Uint8Array(64).fill(7))
const creation = (over: Partial<CreationOptionsJSON> = {}): { publicKey: CreationOptionsJSON } => ({
  publicKey: {
    rp: { id: "localhost", name: "Sovereign" },
    user: { id: userId, name: "alice", displayName: "Alice" },
    challenge: toBase64url(new Uint8Array(32).fill(1)),
    pubKeyCredParams: [{ type: "public-key", alg: -8 }, { type: "public-key", alg: -7 }],
    authenticatorSelection: { residentKey: "required", userVerification: "required" },
    attestation: "none",
    ...over,
  },
})

function coseToPoint(cose: Uint8Array): Uint8Array {
  const m = decodeCbor(cose) as Map<CborValue, CborValue>
  assert.equal(m.get(1), 2)
  assert.equal(m.get(3), -7)
  assert.equal(m.get(-1), 1)
  return concat(Uint8Array.of(4), m.get(-2) as Uint8Array, m.get(-3) as Uint8Array)
}

test("registration: none attestation, COSE ES256 key, flags, client data", async () => {
  const a = new SoftwareAuthenticator({ origin, backupEligible: true })
  const r = await a.create(creation())
  assert.equal(r.id, r.rawId)
  assert.equal(fromBase64url(r.id).length, 32)
  const cd = JSON.parse(utf8.decode(fromBase64url(r.response.clientDataJSON)))
  assert.deepEqual(cd, { type: "webauthn.create", challenge: creation().publicKey.challenge, origin, crossOrigin: false })
  const att = decodeCbor(fromBase64url(r.response.attestationObject)) as Map<CborValue, CborValue>
  assert.equal(att.get("fmt"), "none")
  assert.equal((att.get("attStmt") as Map<CborValue, CborValue>).size, 0)
  const ad = parseAuthenticatorData(att.get("authData") as Uint8Array)
  assert.ok(rpIdMatches(ad, "localhost"))
  assert.equal(ad.flags, FLAG_UP | FLAG_UV | FLAG_BE | FLAG_AT)
  assert.equal(ad.signCount, 0)
  assert.equal(toBase64url(ad.credentialId!), r.id)
  const point = coseToPoint(ad.credentialPublicKey!)
  assert.equal(point.length, 65)
  // The key in the attestation is the one that signs assertions.
  const g = await a.get({ publicKey: { challenge: toBase64url(new Uint8Array(32).fill(2)), rpId: "localhost", userVerification: "required" } })
  const authData = fromBase64url(g.response.authenticatorData)
  const signed = concat(authData, sha256(fromBase64url(g.response.clientDataJSON)))
  assert.ok(p256.verify(fromBase64url(g.response.signature), signed, point, { format: "der", lowS: false }))
  assert.equal(g.response.userHandle, userId, "discoverable credential returns the user handle")
  const gad = parseAuthenticatorData(authData)
  assert.equal(gad.signCount, 1)
  assert.equal(gad.flags & FLAG_AT, 0)
  const g2 = await a.get({ challenge: toBase64url(new Uint8Array(16)) })
  assert.equal(parseAuthenticatorData(fromBase64url(g2.response.authenticatorData)).signCount, 2, "counter increments")
})

test("ceremony rules: ES256 required, excluded credentials, RP ID, allow list, UV off", async () => {
  const a = new SoftwareAuthenticator({ origin })
  await assert.rejects(a.create(creation({ pubKeyCredParams: [{ type: "public-key", alg: -8 }] })), { name: "NotSupportedError" })
  await assert.rejects(a.create(creation({ rp: { id: "example.com", name: "x" } })), { name: "SecurityError" })
  const r = await a.create(creation())
  await assert.rejects(a.create(creation({ excludeCredentials: [{ type: "public-key", id: r.id }] })), { name: "InvalidStateError" })
  await assert.rejects(a.get({ challenge: "AAAA", allowCredentials: [{ type: "public-key", id: toBase64url(new Uint8Array(32)) }] }), { name: "NotAllowedError" })
  const ok = await a.get({ challenge: "AAAA", allowCredentials: [{ type: "public-key", id: r.id }] })
  assert.equal(ok.id, r.id)
  await assert.rejects(new SoftwareAuthenticator({ origin }).get({ challenge: "AAAA" }), { name: "NotAllowedError" })
  const noUv = new SoftwareAuthenticator({ origin, userVerification: false })
  const nr = await noUv.create(creation())
  const att = decodeCbor(fromBase64url(nr.response.attestationObject)) as Map<CborValue, CborValue>
  assert.equal(parseAuthenticatorData(att.get("authData") as Uint8Array).flags & FLAG_UV, 0)
  // Credentials survive into a new instance (a "restarted" test authenticator).
  const again = new SoftwareAuthenticator({ origin, credentials: a.credentials() })
  const g = await again.get({ challenge: "AAAA" })
  assert.equal(parseAuthenticatorData(fromBase64url(g.response.authenticatorData)).signCount, 2)
  const zero = new SoftwareAuthenticator({ origin, counterStep: 0, credentials: a.credentials() })
  const z = await zero.get({ challenge: "AAAA" })
  assert.equal(parseAuthenticatorData(fromBase64url(z.response.authenticatorData)).signCount, 1)
})

test("browser authenticator converts options to ArrayBuffers and the credential back to JSON", async () => {
  let seen: PublicKeyCredentialCreationOptions | undefined
  const raw = new Uint8Array([9, 8, 7])
  const container = {
    async create(o: { publicKey: PublicKeyCredentialCreationOptions }) {
      seen = o.publicKey
      return {
        id: toBase64url(raw),
        rawId: raw.buffer,
        type: "public-key",
        authenticatorAttachment: "platform",
        getClientExtensionResults: () => ({ credProps: { rk: true } }),
        response: { clientDataJSON: new Uint8Array([1]).buffer, attestationObject: new Uint8Array([2]).buffer, getTransports: () => ["internal"] },
      } as unknown as Credential
    },
    async get() {
      return {
        id: toBase64url(raw),
        rawId: raw.buffer,
        type: "public-key",
        authenticatorAttachment: null,
        getClientExtensionResults: () => ({}),
        response: {
          clientDataJSON: new Uint8Array([1]).buffer,
          authenticatorData: new Uint8Array([3]).buffer,
          signature: new Uint8Array([4]).buffer,
          userHandle: new Uint8Array([5]).buffer,
        },
      } as unknown as Credential
    },
  }
  const b = new BrowserAuthenticator(container)
  const r = await b.create(creation({ excludeCredentials: [{ type: "public-key", id: toBase64url(raw) }] }))
  assert.ok(seen)
  assert.deepEqual(new Uint8Array(seen.challenge as ArrayBuffer), new Uint8Array(32).fill(1))
  assert.deepEqual(new Uint8Array(seen.user.id as ArrayBuffer), new Uint8Array(64).fill(7))
  assert.deepEqual(new Uint8Array(seen.excludeCredentials![0]!.id as ArrayBuffer), raw)
  assert.deepEqual(r.response, { clientDataJSON: "AQ", attestationObject: "Ag", transports: ["internal"] })
  assert.deepEqual(r.clientExtensionResults, { credProps: { rk: true } })
  const g = await b.get({ challenge: "AAAA" })
  assert.deepEqual(g.response, { clientDataJSON: "AQ", authenticatorData: "Aw", signature: "BA", userHandle: "BQ" })
  assert.equal(g.rawId, toBase64url(raw))
  assert.equal(g.authenticatorAttachment, undefined)
})

test("cbor: canonical map order, round trips, strict decoding", () => {
  const m = new Map<CborValue, CborValue>([["fmt", "none"], [-2, new Uint8Array([1])], [1, 2], ["attStmt", new Map()], [3, -7]])
  const b = encodeCbor(m)
  // keys sorted by encoded length then bytes: 1, 3, -2, "fmt", "attStmt"
  assert.deepEqual([...(decodeCbor(b) as Map<CborValue, CborValue>).keys()], [1, 3, -2, "fmt", "attStmt"])
  for (const v of [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32, -1, -24, -25, -(2 ** 40), "", "ü", new Uint8Array(300), [1, [2, "x"]], true, false, null] as CborValue[]) {
    assert.deepEqual(decodeCbor(encodeCbor(v)), v)
  }
  assert.deepEqual([...encodeCbor(-7)], [0x26])
  assert.deepEqual([...encodeCbor(24)], [0x18, 24])
  assert.throws(() => decodeCbor(Uint8Array.of(0x18)), /truncated/)
  assert.throws(() => decodeCbor(Uint8Array.of(0x01, 0x02)), /trailing/)
  assert.throws(() => decodeCbor(Uint8Array.of(0x5f)), /indefinite/)
  assert.throws(() => decodeCbor(Uint8Array.of(0xa2, 0x01, 0x01, 0x01, 0x02)), /duplicate/)
  assert.throws(() => decodeCbor(Uint8Array.of(0x5a, 0xff, 0xff, 0xff, 0xff)), /truncated/)
  assert.throws(() => encodeCbor(1.5), /integers/)
})
