// Passkeys (WebAuthn Level 3) behind one interface. In a browser,
// BrowserAuthenticator calls navigator.credentials; in Node tests (and in
// tools), SoftwareAuthenticator (software-authenticator.ts, exported from
// "@sovereign-im/client/testing" only) performs the same ceremonies.
import { sha256 } from "@noble/hashes/sha2.js"
import { equal, fromBase64url, toArrayBuffer, toBase64url, utf8 } from "./bytes.js"

/** The JSON form of PublicKeyCredentialCreationOptions (binary fields base64url). */
export interface CreationOptionsJSON {
  rp: { id?: string; name: string }
  user: { id: string; name: string; displayName: string }
  challenge: string
  pubKeyCredParams: { type: string; alg: number }[]
  timeout?: number
  excludeCredentials?: CredentialDescriptorJSON[]
  authenticatorSelection?: {
    authenticatorAttachment?: string
    residentKey?: string
    requireResidentKey?: boolean
    userVerification?: string
  }
  attestation?: string
  extensions?: Record<string, unknown>
  hints?: string[]
}

/** The JSON form of PublicKeyCredentialRequestOptions. */
export interface RequestOptionsJSON {
  challenge: string
  timeout?: number
  rpId?: string
  allowCredentials?: CredentialDescriptorJSON[]
  userVerification?: string
  extensions?: Record<string, unknown>
  hints?: string[]
}

export interface CredentialDescriptorJSON {
  type: string
  id: string
  transports?: string[]
}

/** What a registration ceremony hands back to the relying party. */
export interface RegistrationResponseJSON {
  id: string
  rawId: string
  type: "public-key"
  response: { clientDataJSON: string; attestationObject: string; transports?: string[] }
  clientExtensionResults: Record<string, unknown>
  authenticatorAttachment?: string
}

/** What an authentication ceremony hands back to the relying party. */
export interface AuthenticationResponseJSON {
  id: string
  rawId: string
  type: "public-key"
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string }
  clientExtensionResults: Record<string, unknown>
  authenticatorAttachment?: string
}

/**
 * An authenticator plus the client (browser) around it. Options may be given
 * bare or wrapped as go-webauthn sends them ({"publicKey": {...}}).
 */
export interface Authenticator {
  create(options: CreationOptionsJSON | { publicKey: CreationOptionsJSON }): Promise<RegistrationResponseJSON>
  get(options: RequestOptionsJSON | { publicKey: RequestOptionsJSON }): Promise<AuthenticationResponseJSON>
}

/** A WebAuthn failure, named like the DOMException a browser would throw. */
export class WebAuthnError extends Error {
  constructor(
    override readonly name: "NotAllowedError" | "InvalidStateError" | "NotSupportedError" | "SecurityError",
    message: string,
  ) {
    super(message)
  }
}

/** The options themselves, whether given bare or wrapped as {"publicKey": {...}}. */
export function unwrap<T>(o: T | { publicKey: T }): T {
  return typeof o === "object" && o !== null && "publicKey" in o ? (o as { publicKey: T }).publicKey : (o as T)
}

// Authenticator data flags (WebAuthn §6.1).
export const FLAG_UP = 0x01
export const FLAG_UV = 0x04
export const FLAG_BE = 0x08
export const FLAG_BS = 0x10
export const FLAG_AT = 0x40
export const FLAG_ED = 0x80

/** Parsed authenticator data (WebAuthn §6.1), for tests and diagnostics. */
export interface AuthenticatorData {
  rpIdHash: Uint8Array
  flags: number
  signCount: number
  aaguid?: Uint8Array
  credentialId?: Uint8Array
  credentialPublicKey?: Uint8Array
}

export function parseAuthenticatorData(b: Uint8Array): AuthenticatorData {
  if (b.length < 37) throw new Error("authenticator data too short")
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const out: AuthenticatorData = { rpIdHash: b.slice(0, 32), flags: b[32]!, signCount: dv.getUint32(33) }
  if (out.flags & FLAG_AT) {
    if (b.length < 55) throw new Error("attested credential data truncated")
    out.aaguid = b.slice(37, 53)
    const len = dv.getUint16(53)
    if (b.length < 55 + len) throw new Error("credential id truncated")
    out.credentialId = b.slice(55, 55 + len)
    out.credentialPublicKey = b.slice(55 + len)
  }
  return out
}

/** True when rpIdHash is SHA-256 of rpId. */
export function rpIdMatches(data: AuthenticatorData, rpId: string): boolean {
  return equal(data.rpIdHash, sha256(utf8.encode(rpId)))
}

// ---------------------------------------------------------------------------
// Browser

type CredentialsContainerLike = {
  create(o: { publicKey: PublicKeyCredentialCreationOptions }): Promise<Credential | null>
  get(o: { publicKey: PublicKeyCredentialRequestOptions; mediation?: CredentialMediationRequirement }): Promise<Credential | null>
}

/**
 * The browser's platform or roaming authenticators through
 * navigator.credentials. Converts the server's JSON options (base64url) to
 * the ArrayBuffers the API takes, and the resulting credential back to JSON.
 */
export class BrowserAuthenticator implements Authenticator {
  constructor(private readonly container: CredentialsContainerLike = globalThis.navigator?.credentials as CredentialsContainerLike) {
    if (!this.container) throw new Error("navigator.credentials is not available here")
  }

  async create(options: CreationOptionsJSON | { publicKey: CreationOptionsJSON }): Promise<RegistrationResponseJSON> {
    const o = unwrap(options)
    const publicKey: PublicKeyCredentialCreationOptions = {
      rp: o.rp,
      user: { id: buf(o.user.id), name: o.user.name, displayName: o.user.displayName },
      challenge: buf(o.challenge),
      pubKeyCredParams: o.pubKeyCredParams as PublicKeyCredentialParameters[],
      timeout: o.timeout,
      excludeCredentials: (o.excludeCredentials ?? []).map(descriptor),
      authenticatorSelection: o.authenticatorSelection as AuthenticatorSelectionCriteria | undefined,
      attestation: o.attestation as AttestationConveyancePreference | undefined,
      extensions: o.extensions as AuthenticationExtensionsClientInputs | undefined,
    }
    const cred = (await this.container.create({ publicKey })) as PublicKeyCredential | null
    if (!cred) throw new WebAuthnError("NotAllowedError", "no credential was created")
    const r = cred.response as AuthenticatorAttestationResponse
    return {
      id: cred.id,
      rawId: toBase64url(new Uint8Array(cred.rawId)),
      type: "public-key",
      response: {
        clientDataJSON: toBase64url(new Uint8Array(r.clientDataJSON)),
        attestationObject: toBase64url(new Uint8Array(r.attestationObject)),
        transports: typeof r.getTransports === "function" ? r.getTransports() : undefined,
      },
      clientExtensionResults: cred.getClientExtensionResults() as Record<string, unknown>,
      authenticatorAttachment: cred.authenticatorAttachment ?? undefined,
    }
  }

  async get(options: RequestOptionsJSON | { publicKey: RequestOptionsJSON }): Promise<AuthenticationResponseJSON> {
    const o = unwrap(options)
    const publicKey: PublicKeyCredentialRequestOptions = {
      challenge: buf(o.challenge),
      timeout: o.timeout,
      rpId: o.rpId,
      allowCredentials: (o.allowCredentials ?? []).map(descriptor),
      userVerification: o.userVerification as UserVerificationRequirement | undefined,
      extensions: o.extensions as AuthenticationExtensionsClientInputs | undefined,
    }
    const cred = (await this.container.get({ publicKey })) as PublicKeyCredential | null
    if (!cred) throw new WebAuthnError("NotAllowedError", "no credential was chosen")
    const r = cred.response as AuthenticatorAssertionResponse
    return {
      id: cred.id,
      rawId: toBase64url(new Uint8Array(cred.rawId)),
      type: "public-key",
      response: {
        clientDataJSON: toBase64url(new Uint8Array(r.clientDataJSON)),
        authenticatorData: toBase64url(new Uint8Array(r.authenticatorData)),
        signature: toBase64url(new Uint8Array(r.signature)),
        userHandle: r.userHandle ? toBase64url(new Uint8Array(r.userHandle)) : undefined,
      },
      clientExtensionResults: cred.getClientExtensionResults() as Record<string, unknown>,
      authenticatorAttachment: cred.authenticatorAttachment ?? undefined,
    }
  }
}

function buf(b64url: string): ArrayBuffer {
  return toArrayBuffer(fromBase64url(b64url))
}

function descriptor(d: CredentialDescriptorJSON): PublicKeyCredentialDescriptor {
  return { type: "public-key", id: buf(d.id), transports: d.transports as AuthenticatorTransport[] | undefined }
}
