// SoftwareAuthenticator: the passkey ceremonies in software, for tests and
// tools (exported from "@sovereign-im/client/testing", never from the main
// entry). It keeps an ES256 key in memory and produces real CBOR attestation
// objects, COSE keys, authenticator data, counters and discoverable
// credentials, verified by the server exactly like a hardware
// authenticator's.
import { p256 } from "@noble/curves/nist.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { randomBytes } from "@noble/hashes/utils.js"
import { concat, fromBase64url, toBase64url, utf8 } from "./bytes.js"
import { encodeCbor, type CborValue } from "./cbor.js"
import {
  FLAG_AT,
  FLAG_BE,
  FLAG_BS,
  FLAG_UP,
  FLAG_UV,
  WebAuthnError,
  unwrap,
  type AuthenticationResponseJSON,
  type Authenticator,
  type CreationOptionsJSON,
  type RegistrationResponseJSON,
  type RequestOptionsJSON,
} from "./webauthn.js"

const COSE_ALG_ES256 = -7

/** A credential held by the software authenticator (exportable for persistence in tests). */
export interface SoftwareCredential {
  id: string // base64url credential id
  rpId: string
  userHandle: string // base64url user.id
  userName: string
  privateKey: string // base64url P-256 scalar
  counter: number
}

export interface SoftwareAuthenticatorOptions {
  /** The origin the "browser" reports in clientDataJSON, e.g. http://localhost:8080. */
  origin: string
  /** Set UV (user verified); default true. False lets tests prove the server insists on it. */
  userVerification?: boolean
  /** Set UP (user present); default true. */
  userPresence?: boolean
  /** Backup eligible/state flags, as a synced passkey sets them; default false. */
  backupEligible?: boolean
  backupState?: boolean
  /** Add this to the signature counter on every assertion; default 1. 0 behaves like synced passkeys. */
  counterStep?: number
  /** 16-byte AAGUID; default all zero (as for 'none' attestation). */
  aaguid?: Uint8Array
  /** Picks among several discoverable credentials; default: the most recently created. */
  select?: (candidates: SoftwareCredential[]) => SoftwareCredential
  /** Credentials to start with (from credentials() of an earlier instance). */
  credentials?: SoftwareCredential[]
}

/**
 * A software passkey authenticator: ES256 (P-256) keys, 'none' attestation,
 * discoverable (resident) credentials with the user handle, a signature
 * counter that grows with every assertion. For tests and tools only: its
 * private keys live in memory.
 */
export class SoftwareAuthenticator implements Authenticator {
  private readonly creds: SoftwareCredential[]
  private readonly opts: Required<Omit<SoftwareAuthenticatorOptions, "credentials" | "select">> &
    Pick<SoftwareAuthenticatorOptions, "select">

  constructor(options: SoftwareAuthenticatorOptions) {
    this.opts = {
      origin: options.origin,
      userVerification: options.userVerification ?? true,
      userPresence: options.userPresence ?? true,
      backupEligible: options.backupEligible ?? false,
      backupState: options.backupState ?? false,
      counterStep: options.counterStep ?? 1,
      aaguid: options.aaguid ?? new Uint8Array(16),
      select: options.select,
    }
    if (this.opts.aaguid.length !== 16) throw new Error("aaguid must be 16 bytes")
    this.creds = (options.credentials ?? []).map((c) => ({ ...c }))
  }

  /** A copy of every credential, e.g. to build a new instance later. */
  credentials(): SoftwareCredential[] {
    return this.creds.map((c) => ({ ...c }))
  }

  private defaultRpId(): string {
    return new URL(this.opts.origin).hostname
  }

  private flags(extra: number): number {
    let f = extra
    if (this.opts.userPresence) f |= FLAG_UP
    if (this.opts.userVerification) f |= FLAG_UV
    if (this.opts.backupEligible) f |= FLAG_BE
    if (this.opts.backupState) f |= FLAG_BS
    return f
  }

  private clientData(type: "webauthn.create" | "webauthn.get", challenge: string): Uint8Array {
    // Re-encode the challenge so a malformed one fails here, as in a browser.
    const c = toBase64url(fromBase64url(challenge))
    return utf8.encode(JSON.stringify({ type, challenge: c, origin: this.opts.origin, crossOrigin: false }))
  }

  private checkRpId(rpId: string): void {
    const host = this.defaultRpId()
    if (host !== rpId && !host.endsWith("." + rpId)) {
      throw new WebAuthnError("SecurityError", `RP ID ${rpId} is not a registrable suffix of ${host}`)
    }
  }

  async create(options: CreationOptionsJSON | { publicKey: CreationOptionsJSON }): Promise<RegistrationResponseJSON> {
    const o = unwrap(options)
    const rpId = o.rp.id ?? this.defaultRpId()
    this.checkRpId(rpId)
    if (!o.pubKeyCredParams.some((p) => p.type === "public-key" && p.alg === COSE_ALG_ES256)) {
      throw new WebAuthnError("NotSupportedError", "the relying party does not accept ES256")
    }
    for (const ex of o.excludeCredentials ?? []) {
      if (this.creds.some((c) => c.rpId === rpId && c.id === toBase64url(fromBase64url(ex.id)))) {
        throw new WebAuthnError("InvalidStateError", "this authenticator already holds an excluded credential")
      }
    }
    const secretKey = p256.utils.randomSecretKey()
    const pub = p256.getPublicKey(secretKey, false) // 0x04 || x || y
    const credId = randomBytes(32)
    const coseKey = encodeCbor(
      new Map<number, number | Uint8Array>([
        [1, 2], // kty: EC2
        [3, COSE_ALG_ES256], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, pub.slice(1, 33)], // x
        [-3, pub.slice(33, 65)], // y
      ]),
    )
    const counter = 0
    const credIdLen = Uint8Array.of(credId.length >> 8, credId.length & 0xff)
    const authData = concat(
      sha256(utf8.encode(rpId)),
      Uint8Array.of(this.flags(FLAG_AT)),
      u32(counter),
      this.opts.aaguid,
      credIdLen,
      credId,
      coseKey,
    )
    const attestationObject = encodeCbor(
      new Map<CborValue, CborValue>([
        ["fmt", "none"],
        ["attStmt", new Map<CborValue, CborValue>()],
        ["authData", authData],
      ]),
    )
    const cred: SoftwareCredential = {
      id: toBase64url(credId),
      rpId,
      userHandle: toBase64url(fromBase64url(o.user.id)),
      userName: o.user.name,
      privateKey: toBase64url(secretKey),
      counter,
    }
    // A new credential for the same user and RP replaces the old one (as platform authenticators do).
    const same = this.creds.findIndex((c) => c.rpId === rpId && c.userHandle === cred.userHandle)
    if (same >= 0) this.creds.splice(same, 1)
    this.creds.push(cred)
    return {
      id: cred.id,
      rawId: cred.id,
      type: "public-key",
      response: {
        clientDataJSON: toBase64url(this.clientData("webauthn.create", o.challenge)),
        attestationObject: toBase64url(attestationObject),
        transports: ["internal", "hybrid"],
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform",
    }
  }

  async get(options: RequestOptionsJSON | { publicKey: RequestOptionsJSON }): Promise<AuthenticationResponseJSON> {
    const o = unwrap(options)
    const rpId = o.rpId ?? this.defaultRpId()
    this.checkRpId(rpId)
    let candidates = this.creds.filter((c) => c.rpId === rpId)
    const allow = o.allowCredentials ?? []
    if (allow.length > 0) {
      const ids = new Set(allow.map((a) => toBase64url(fromBase64url(a.id))))
      candidates = candidates.filter((c) => ids.has(c.id))
    }
    if (candidates.length === 0) throw new WebAuthnError("NotAllowedError", `no credential for ${rpId}`)
    const cred = this.opts.select ? this.opts.select(candidates) : candidates[candidates.length - 1]!
    if (!candidates.includes(cred)) throw new WebAuthnError("NotAllowedError", "selected credential is not a candidate")
    cred.counter += this.opts.counterStep
    const authData = concat(sha256(utf8.encode(rpId)), Uint8Array.of(this.flags(0)), u32(cred.counter))
    const clientDataJSON = this.clientData("webauthn.get", o.challenge)
    const signature = p256.sign(concat(authData, sha256(clientDataJSON)), fromBase64url(cred.privateKey), {
      prehash: true,
      format: "der",
    })
    return {
      id: cred.id,
      rawId: cred.id,
      type: "public-key",
      response: {
        clientDataJSON: toBase64url(clientDataJSON),
        authenticatorData: toBase64url(authData),
        signature: toBase64url(signature),
        userHandle: cred.userHandle,
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform",
    }
  }
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0)
  return b
}

