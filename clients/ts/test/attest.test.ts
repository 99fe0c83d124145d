import { test } from "node:test"
import assert from "node:assert/strict"
import { randomBytes } from "@noble/hashes/utils.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { concat, fromHex, toArrayBuffer, toBase64url, toHex, utf8 } from "../src/bytes.js"
import { encodeCbor } from "../src/cbor.js"
import {
  AttestationError,
  approvalChallenge,
  bindingChallenge,
  derToRawSignature,
  verifyAssertion,
  type StoredAssertion,
} from "../src/attest.js"
import { FLAG_UP, FLAG_UV } from "../src/webauthn.js"
import { ORIGIN, RP_ID, assertWith, newPasskey } from "./helpers/attest.js"

const want = (challenge: Uint8Array) => ({ challenge, rpId: RP_ID, origins: [ORIGIN] })

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AttestationError, String(e))
    assert.equal(e.code, code)
    return true
  })
}

test("the challenges are domain-separated, length-prefixed SHA-256", () => {
  const nonce = new Uint8Array(32).fill(0xab)
  const key = new Uint8Array(32).fill(1)
  const dev = "0190c3f2-7a5b-7c3d-8e9f-0123456789ab"
  const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff)
  const expect = sha256(concat(utf8.encode("sovereign device binding v1"), Uint8Array.of(0), nonce, u16(32), key, u16(36), utf8.encode(dev)))
  assert.equal(toHex(bindingChallenge(nonce, key, dev)), toHex(expect))
  assert.equal(toHex(bindingChallenge(nonce, key, dev.toUpperCase())), toHex(expect), "the device id is taken in lower case")
  // Every input matters.
  assert.notEqual(toHex(bindingChallenge(new Uint8Array(32), key, dev)), toHex(expect))
  assert.notEqual(toHex(bindingChallenge(nonce, new Uint8Array(32).fill(2), dev)), toHex(expect))
  assert.notEqual(toHex(bindingChallenge(nonce, key, "0190c3f2-7a5b-7c3d-8e9f-0123456789ac")), toHex(expect))
  const cred = randomBytes(16)
  const cose = randomBytes(77)
  const ap = sha256(concat(utf8.encode("sovereign passkey approval v1"), Uint8Array.of(0), nonce, u16(16), cred, u16(77), cose))
  assert.equal(toHex(approvalChallenge(nonce, cred, cose)), toHex(ap))
  assert.throws(() => bindingChallenge(new Uint8Array(31), key, dev), /nonce/)
})

test("DER ECDSA signatures convert to r‖s", () => {
  // r with a leading zero byte (high bit set), s short.
  const r = fromHex("00" + "80".repeat(32))
  const s = fromHex("01".repeat(31))
  const der = concat(Uint8Array.of(0x30, 2 + r.length + 2 + s.length, 2, r.length), r, Uint8Array.of(2, s.length), s)
  const raw = derToRawSignature(der)
  assert.equal(toHex(raw), "80".repeat(32) + "00" + "01".repeat(31))
  assert.throws(() => derToRawSignature(concat(der, Uint8Array.of(0))), AttestationError)
  assert.throws(() => derToRawSignature(der.subarray(0, der.length - 1)), AttestationError)
})

test("ES256: a real assertion of the software authenticator verifies, every changed field is refused", async () => {
  const pk = await newPasskey()
  const ch = randomBytes(32)
  const a = await assertWith(pk, ch)
  await verifyAssertion(pk.publicKey, a, want(ch))

  await refused(verifyAssertion(pk.publicKey, a, want(randomBytes(32))), "wrong_challenge")
  await refused(verifyAssertion(pk.publicKey, a, { ...want(ch), origins: ["https://localhost"] }), "wrong_origin")
  await refused(verifyAssertion(pk.publicKey, a, { challenge: ch, rpId: "other.test", origins: [ORIGIN] }), "wrong_rp_id")

  const cd = JSON.parse(utf8.decode(a.clientDataJSON)) as Record<string, unknown>
  const withCd = (o: Record<string, unknown>): StoredAssertion => ({ ...a, clientDataJSON: utf8.encode(JSON.stringify({ ...cd, ...o })) })
  await refused(verifyAssertion(pk.publicKey, withCd({ type: "webauthn.create" }), want(ch)), "wrong_type")
  await refused(verifyAssertion(pk.publicKey, withCd({ origin: "https://evil.test" }), want(ch)), "wrong_origin")
  await refused(verifyAssertion(pk.publicKey, withCd({ crossOrigin: true }), want(ch)), "wrong_origin")
  // The signature covers the hash of the exact JSON: an added field breaks it.
  await refused(verifyAssertion(pk.publicKey, withCd({ extra: 1 }), want(ch)), "bad_signature")
  await refused(verifyAssertion(pk.publicKey, { ...a, clientDataJSON: utf8.encode("{") }, want(ch)), "bad_client_data")

  const ad = a.authenticatorData.slice()
  ad[32] = ad[32]! & ~FLAG_UP
  await refused(verifyAssertion(pk.publicKey, { ...a, authenticatorData: ad }, want(ch)), "user_not_present")
  const counter = a.authenticatorData.slice()
  counter[36] = counter[36]! ^ 1
  await refused(verifyAssertion(pk.publicKey, { ...a, authenticatorData: counter }, want(ch)), "bad_signature")
  await refused(verifyAssertion(pk.publicKey, { ...a, authenticatorData: a.authenticatorData.subarray(0, 36) }, want(ch)), "bad_authenticator_data")
  const sig = a.signature.slice()
  sig[sig.length - 1] = sig[sig.length - 1]! ^ 1
  await refused(verifyAssertion(pk.publicKey, { ...a, signature: sig }, want(ch)), "bad_signature")
  const other = await newPasskey()
  await refused(verifyAssertion(other.publicKey, a, want(ch)), "bad_signature")
  await refused(verifyAssertion(randomBytes(10), a, want(ch)), "bad_public_key")
})

async function foreignAssertion(
  sign: (data: Uint8Array) => Promise<Uint8Array>,
  challenge: Uint8Array,
): Promise<StoredAssertion> {
  const authenticatorData = concat(sha256(utf8.encode(RP_ID)), Uint8Array.of(FLAG_UP | FLAG_UV), Uint8Array.of(0, 0, 0, 7))
  const clientDataJSON = utf8.encode(JSON.stringify({ type: "webauthn.get", challenge: toBase64url(challenge), origin: ORIGIN }))
  const signature = await sign(concat(authenticatorData, sha256(clientDataJSON)))
  return { authenticatorData, clientDataJSON, signature }
}

test("EdDSA (Ed25519) and RS256 passkeys verify through WebCrypto", async () => {
  const ed = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair
  const edRaw = new Uint8Array(await crypto.subtle.exportKey("raw", ed.publicKey))
  const edCose = encodeCbor(new Map<number, number | Uint8Array>([[1, 1], [3, -8], [-1, 6], [-2, edRaw]]))
  const ch = randomBytes(32)
  const edA = await foreignAssertion(async (d) => new Uint8Array(await crypto.subtle.sign("Ed25519", ed.privateKey, toArrayBuffer(d))), ch)
  await verifyAssertion(edCose, edA, want(ch))
  await refused(verifyAssertion(edCose, edA, want(randomBytes(32))), "wrong_challenge")
  const edBad = edA.signature.slice()
  edBad[0] = edBad[0]! ^ 1
  await refused(verifyAssertion(edCose, { ...edA, signature: edBad }, want(ch)), "bad_signature")

  const rsa = (await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair
  const jwk = await crypto.subtle.exportKey("jwk", rsa.publicKey)
  const { fromBase64url } = await import("../src/bytes.js")
  const rsaCose = encodeCbor(new Map<number, number | Uint8Array>([[1, 3], [3, -257], [-1, fromBase64url(jwk.n!)], [-2, fromBase64url(jwk.e!)]]))
  const rsaA = await foreignAssertion(async (d) => new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", rsa.privateKey, toArrayBuffer(d))), ch)
  await verifyAssertion(rsaCose, rsaA, want(ch))
  const rsaBad = rsaA.authenticatorData.slice()
  rsaBad[33] = 9
  await refused(verifyAssertion(rsaCose, { ...rsaA, authenticatorData: rsaBad }, want(ch)), "bad_signature")
  // Keys and algorithms that do not match are refused.
  await refused(verifyAssertion(rsaCose, edA, want(ch)), "bad_signature")
  const es256AsEd = encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, -8], [-1, 1], [-2, edRaw], [-3, edRaw]]))
  await refused(verifyAssertion(es256AsEd, edA, want(ch)), "unsupported_algorithm")
})

test("the challenges match the server's test vectors (docs/verification.md)", () => {
  const nonce = Uint8Array.from({ length: 32 }, (_, i) => i)
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + (i % 16))
  assert.equal(
    toHex(bindingChallenge(nonce, key, "0193f3c4-8f7a-7c2e-9d1b-3a4b5c6d7e8f")),
    "3e2ebd06b0e89009c56f854e292bd597ed75ed73f128750d11f3bd73155b9f7a",
  )
  const cred = Uint8Array.from({ length: 16 }, (_, i) => i + 1)
  assert.equal(
    toHex(approvalChallenge(nonce, cred, fromHex("a5010203262001"))),
    "8eba6bd5f2450fc0d552897421bf9c0de32804c907bdbe5ff841e1aded8e7a3e",
  )
})

test("without a list, an origin is accepted when a browser would let it use the rp id", async () => {
  const { originFitsRpId } = await import("../src/attest.js")
  assert.ok(originFitsRpId("https://chat.example.org", "example.org"))
  assert.ok(originFitsRpId("https://example.org", "example.org"))
  assert.ok(originFitsRpId("http://localhost:8080", "localhost"))
  assert.ok(!originFitsRpId("http://example.org", "example.org"), "http only on localhost")
  assert.ok(!originFitsRpId("https://badexample.org", "example.org"))
  assert.ok(!originFitsRpId("https://example.org.evil.test", "example.org"))
  assert.ok(!originFitsRpId("https://example.org/path", "example.org"))
  const pk = await newPasskey()
  const ch = randomBytes(32)
  const a = await assertWith(pk, ch)
  await verifyAssertion(pk.publicKey, a, { challenge: ch, rpId: RP_ID })
  const cd = JSON.parse(utf8.decode(a.clientDataJSON)) as Record<string, unknown>
  const evil = { ...a, clientDataJSON: utf8.encode(JSON.stringify({ ...cd, origin: "https://evil.test" })) }
  await refused(verifyAssertion(pk.publicKey, evil, { challenge: ch, rpId: RP_ID }), "wrong_origin")
})
