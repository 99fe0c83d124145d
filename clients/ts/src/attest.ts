// Passkey attestation of devices (docs/verification.md, issue #18 item 1):
// the two domain-separated WebAuthn challenges (device binding, passkey
// approval) and the verification of a WebAuthn assertion against a
// COSE_Key with WebCrypto only (ES256, EdDSA/Ed25519, RS256). A passkey
// that signed the binding challenge of (nonce, signature key, device id)
// approved that exact MLS signature key for that device; the server cannot
// produce such an assertion without the user's passkey.
import { sha256 } from "@noble/hashes/sha2.js"
import { concat, equal, fromBase64url, toArrayBuffer, toBase64url, utf8 } from "./bytes.js"
import { decodeCbor, type CborValue } from "./cbor-decode.js"
import { FLAG_UP } from "./webauthn.js"

/** The domain label of the device binding challenge. */
export const BINDING_LABEL = "sovereign device binding v1"
/** The domain label of the passkey approval challenge. */
export const APPROVAL_LABEL = "sovereign passkey approval v1"
/** Nonces are 32 bytes. */
export const NONCE_BYTES = 32

/** Why an attestation was refused; `code` is machine-readable. */
export class AttestationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = "AttestationError"
  }
}

function u16(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new AttestationError("bad_length", `length ${n} does not fit in u16`)
  return Uint8Array.of(n >> 8, n & 0xff)
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== NONCE_BYTES) throw new AttestationError("bad_nonce", `nonce is ${nonce.length} bytes, not ${NONCE_BYTES}`)
}

/**
 * The device binding challenge: SHA-256("sovereign device binding v1" ‖ 0x00
 * ‖ nonce(32) ‖ u16 len ‖ signature_key ‖ u16 len ‖ device_id as UTF-8, lower case).
 */
export function bindingChallenge(nonce: Uint8Array, signatureKey: Uint8Array, deviceId: string): Uint8Array {
  checkNonce(nonce)
  const id = utf8.encode(deviceId.toLowerCase())
  return sha256(
    concat(utf8.encode(BINDING_LABEL), Uint8Array.of(0), nonce, u16(signatureKey.length), signatureKey, u16(id.length), id),
  )
}

/**
 * The passkey approval challenge: SHA-256("sovereign passkey approval v1" ‖
 * 0x00 ‖ nonce(32) ‖ u16 len ‖ new credential id ‖ u16 len ‖ new COSE_Key bytes).
 */
export function approvalChallenge(nonce: Uint8Array, credentialId: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkNonce(nonce)
  return sha256(
    concat(utf8.encode(APPROVAL_LABEL), Uint8Array.of(0), nonce, u16(credentialId.length), credentialId, u16(publicKey.length), publicKey),
  )
}

// --- COSE_Key (RFC 9052/9053) ------------------------------------------------

export const COSE_ALG_ES256 = -7
export const COSE_ALG_EDDSA = -8
export const COSE_ALG_RS256 = -257

/** A passkey public key ready for WebCrypto verification. */
export interface VerifyKey {
  alg: typeof COSE_ALG_ES256 | typeof COSE_ALG_EDDSA | typeof COSE_ALG_RS256
  key: CryptoKey
}

function field(m: Map<CborValue, CborValue>, k: number): CborValue | undefined {
  return m.get(k)
}
function bytesOf(m: Map<CborValue, CborValue>, k: number, what: string, len?: number): Uint8Array {
  const v = field(m, k)
  if (!(v instanceof Uint8Array)) throw new AttestationError("bad_public_key", `COSE_Key lacks ${what}`)
  if (len !== undefined && v.length !== len) throw new AttestationError("bad_public_key", `COSE_Key ${what} is ${v.length} bytes, not ${len}`)
  return v
}

const keyCache = new Map<string, Promise<VerifyKey>>()
const KEY_CACHE_MAX = 4096

/**
 * Parses a COSE_Key and imports it into WebCrypto. Supported: EC2/P-256 with
 * ES256, OKP/Ed25519 with EdDSA, RSA with RS256 (at least 2048 bits).
 * Imported keys are cached by their bytes.
 */
export function importCoseKey(cose: Uint8Array): Promise<VerifyKey> {
  const id = toBase64url(cose)
  let p = keyCache.get(id)
  if (!p) {
    p = importUncached(cose)
    p.catch(() => keyCache.delete(id))
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear()
    keyCache.set(id, p)
  }
  return p
}

async function importUncached(cose: Uint8Array): Promise<VerifyKey> {
  let m: CborValue
  try {
    m = decodeCbor(cose)
  } catch (e) {
    throw new AttestationError("bad_public_key", `COSE_Key is not CBOR: ${(e as Error).message}`)
  }
  if (!(m instanceof Map)) throw new AttestationError("bad_public_key", "COSE_Key is not a map")
  const kty = field(m, 1)
  const alg = field(m, 3)
  const subtle = crypto.subtle
  if (kty === 2 && alg === COSE_ALG_ES256) {
    if (field(m, -1) !== 1) throw new AttestationError("bad_public_key", "ES256 key is not on P-256")
    const x = bytesOf(m, -2, "x", 32)
    const y = bytesOf(m, -3, "y", 32)
    const key = await subtle
      .importKey("raw", toArrayBuffer(concat(Uint8Array.of(4), x, y)), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"])
      .catch((e: Error) => {
        throw new AttestationError("bad_public_key", `P-256 point rejected: ${e.message}`)
      })
    return { alg: COSE_ALG_ES256, key }
  }
  if (kty === 1 && alg === COSE_ALG_EDDSA) {
    if (field(m, -1) !== 6) throw new AttestationError("bad_public_key", "EdDSA key is not Ed25519")
    const x = bytesOf(m, -2, "x", 32)
    const key = await subtle.importKey("raw", toArrayBuffer(x), { name: "Ed25519" }, false, ["verify"]).catch((e: Error) => {
      throw new AttestationError("bad_public_key", `Ed25519 key rejected: ${e.message}`)
    })
    return { alg: COSE_ALG_EDDSA, key }
  }
  if (kty === 3 && alg === COSE_ALG_RS256) {
    const n = bytesOf(m, -1, "n")
    const e = bytesOf(m, -2, "e")
    let bits = n.length * 8
    for (let i = 0; i < n.length && n[i] === 0; i++) bits -= 8
    if (bits < 2048) throw new AttestationError("bad_public_key", `RSA modulus of ${bits} bits is too short`)
    const key = await subtle
      .importKey(
        "jwk",
        { kty: "RSA", n: toBase64url(n), e: toBase64url(e), alg: "RS256", ext: true },
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        false,
        ["verify"],
      )
      .catch((err: Error) => {
        throw new AttestationError("bad_public_key", `RSA key rejected: ${err.message}`)
      })
    return { alg: COSE_ALG_RS256, key }
  }
  throw new AttestationError("unsupported_algorithm", `COSE_Key kty ${String(kty)} alg ${String(alg)} is not supported`)
}

/** Converts a DER ECDSA signature (SEQUENCE of two INTEGERs) to raw r‖s of size bytes each. */
export function derToRawSignature(der: Uint8Array, size = 32): Uint8Array {
  const bad = (why: string): never => {
    throw new AttestationError("bad_signature", `ECDSA signature is not DER: ${why}`)
  }
  let o = 0
  const len = (): number => {
    if (o >= der.length) bad("truncated")
    const l = der[o++]!
    if (l < 0x80) return l
    if (l !== 0x81) bad("length form")
    if (o >= der.length) bad("truncated")
    const v = der[o++]!
    if (v < 0x80) bad("non-minimal length")
    return v
  }
  if (der[o++] !== 0x30) bad("not a SEQUENCE")
  const seqLen = len()
  if (o + seqLen !== der.length) bad("SEQUENCE length")
  const int = (): Uint8Array => {
    if (der[o++] !== 0x02) bad("not an INTEGER")
    const l = len()
    if (l === 0 || o + l > der.length) bad("INTEGER length")
    let v = der.subarray(o, o + l)
    o += l
    if (v[0]! & 0x80) bad("negative INTEGER")
    if (v.length > 1 && v[0] === 0 && !(v[1]! & 0x80)) bad("non-minimal INTEGER")
    while (v.length > 0 && v[0] === 0) v = v.subarray(1)
    if (v.length > size) bad("INTEGER too large")
    const out = new Uint8Array(size)
    out.set(v, size - v.length)
    return out
  }
  const r = int()
  const s = int()
  if (o !== der.length) bad("trailing bytes")
  return concat(r, s)
}

/** Verifies a signature made by a COSE key over data (ES256 signatures in DER, as WebAuthn sends them). */
export async function verifySignature(k: VerifyKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  const subtle = crypto.subtle
  switch (k.alg) {
    case COSE_ALG_ES256:
      return subtle.verify({ name: "ECDSA", hash: "SHA-256" }, k.key, toArrayBuffer(derToRawSignature(signature)), toArrayBuffer(data))
    case COSE_ALG_EDDSA:
      return subtle.verify({ name: "Ed25519" }, k.key, toArrayBuffer(signature), toArrayBuffer(data))
    case COSE_ALG_RS256:
      return subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, k.key, toArrayBuffer(signature), toArrayBuffer(data))
  }
}

// --- WebAuthn assertions -----------------------------------------------------

/** An assertion as the server stores and serves it with a device or a passkey. */
export interface StoredAssertion {
  authenticatorData: Uint8Array
  clientDataJSON: Uint8Array
  signature: Uint8Array
}

/** What an assertion must match. */
export interface AssertionExpectation {
  /** The challenge the assertion must carry (recomputed, never taken from the server). */
  challenge: Uint8Array
  /** The relying party id (the server's domain). */
  rpId: string
  /**
   * Origins accepted in clientDataJSON. Default: every origin a browser lets
   * use this rp id (https on the rp id or a subdomain of it; http too for
   * localhost), as WebAuthn's own rule.
   */
  origins?: string[]
}

/** Whether a browser would let origin use rpId: its host is rpId or a subdomain, over https (or http on localhost). */
export function originFitsRpId(origin: string, rpId: string): boolean {
  let u: URL
  try {
    u = new URL(origin)
  } catch {
    return false
  }
  if (u.origin !== origin) return false
  const host = u.hostname
  if (host !== rpId && !host.endsWith("." + rpId)) return false
  return u.protocol === "https:" || (u.protocol === "http:" && (host === "localhost" || host.endsWith(".localhost")))
}

/**
 * Verifies a WebAuthn assertion under a COSE public key: clientDataJSON's
 * type is webauthn.get, its challenge is the expected one and its origin an
 * accepted one; authenticatorData's rpIdHash is SHA-256(rp id) and the UP flag
 * is set; the signature covers authenticatorData ‖ SHA-256(clientDataJSON).
 * Throws an AttestationError saying which check failed.
 */
export async function verifyAssertion(publicKey: Uint8Array, a: StoredAssertion, want: AssertionExpectation): Promise<void> {
  let cd: { type?: unknown; challenge?: unknown; origin?: unknown; crossOrigin?: unknown }
  try {
    cd = JSON.parse(utf8.decode(a.clientDataJSON)) as typeof cd
  } catch {
    throw new AttestationError("bad_client_data", "clientDataJSON is not JSON")
  }
  if (typeof cd !== "object" || cd === null) throw new AttestationError("bad_client_data", "clientDataJSON is not an object")
  if (cd.type !== "webauthn.get") throw new AttestationError("wrong_type", `clientDataJSON.type is ${String(cd.type)}`)
  let got: Uint8Array
  try {
    if (typeof cd.challenge !== "string") throw new Error("missing")
    got = fromBase64url(cd.challenge)
  } catch {
    throw new AttestationError("wrong_challenge", "clientDataJSON.challenge is not base64url")
  }
  if (!equal(got, want.challenge)) throw new AttestationError("wrong_challenge", "the assertion signs another challenge")
  const fits =
    typeof cd.origin === "string" && (want.origins && want.origins.length > 0 ? want.origins.includes(cd.origin) : originFitsRpId(cd.origin, want.rpId))
  if (!fits) {
    throw new AttestationError("wrong_origin", `clientDataJSON.origin ${String(cd.origin)} is not an origin of ${want.rpId}`)
  }
  if (cd.crossOrigin === true) throw new AttestationError("wrong_origin", "the assertion was made cross-origin")
  const ad = a.authenticatorData
  if (ad.length < 37) throw new AttestationError("bad_authenticator_data", "authenticatorData is shorter than 37 bytes")
  if (!equal(ad.subarray(0, 32), sha256(utf8.encode(want.rpId)))) {
    throw new AttestationError("wrong_rp_id", `authenticatorData is for another relying party than ${want.rpId}`)
  }
  if (!(ad[32]! & FLAG_UP)) throw new AttestationError("user_not_present", "authenticatorData lacks the UP flag")
  const key = await importCoseKey(publicKey)
  const ok = await verifySignature(key, a.signature, concat(ad, sha256(a.clientDataJSON)))
  if (!ok) throw new AttestationError("bad_signature", "the assertion's signature does not verify")
}
