// Test helpers for passkey attestation: real passkeys from the software
// authenticator, and the served records (bindings, approvals) a server
// would store, built from real assertions.
import { randomBytes } from "@noble/hashes/utils.js"
import { fromBase64url, toBase64, toBase64url } from "../../src/bytes.js"
import { approvalChallenge, bindingChallenge, type StoredAssertion } from "../../src/attest.js"
import type { ServedApproval, ServedBinding, ServedPasskey } from "../../src/attest-verifier.js"
import { SoftwareAuthenticator } from "../../src/software-authenticator.js"
import { parseAuthenticatorData, type RegistrationResponseJSON } from "../../src/webauthn.js"
import { decodeCbor, type CborValue } from "../../src/cbor.js"

export const RP_ID = "localhost"
export const ORIGIN = "http://localhost:8080"

export interface TestPasskey {
  auth: SoftwareAuthenticator
  credentialId: Uint8Array
  publicKey: Uint8Array
}

/** The credential id and COSE public key of a creation result. */
export function creationKey(r: RegistrationResponseJSON): { credentialId: Uint8Array; publicKey: Uint8Array } {
  const att = decodeCbor(fromBase64url(r.response.attestationObject)) as Map<CborValue, CborValue>
  const ad = parseAuthenticatorData(att.get("authData") as Uint8Array)
  return { credentialId: ad.credentialId!, publicKey: ad.credentialPublicKey! }
}

/** A new passkey on its own software authenticator. */
export async function newPasskey(user = "alice", origin = ORIGIN): Promise<TestPasskey> {
  const auth = new SoftwareAuthenticator({ origin })
  const r = await auth.create({
    rp: { id: RP_ID, name: "Sovereign" },
    user: { id: toBase64url(randomBytes(16)), name: user, displayName: user },
    challenge: toBase64url(randomBytes(32)),
    pubKeyCredParams: [{ type: "public-key", alg: -7 }],
  })
  return { auth, ...creationKey(r) }
}

/** A real assertion of pk over challenge. */
export async function assertWith(pk: TestPasskey, challenge: Uint8Array): Promise<StoredAssertion> {
  const a = await pk.auth.get({ challenge: toBase64url(challenge), rpId: RP_ID, allowCredentials: [{ type: "public-key", id: toBase64url(pk.credentialId) }] })
  return {
    authenticatorData: fromBase64url(a.response.authenticatorData),
    clientDataJSON: fromBase64url(a.response.clientDataJSON),
    signature: fromBase64url(a.response.signature),
  }
}

/** The binding a server stores for a device bound by pk. */
export async function bindDevice(pk: TestPasskey, signatureKey: Uint8Array, deviceId: string, nonce = randomBytes(32)): Promise<ServedBinding> {
  const a = await assertWith(pk, bindingChallenge(nonce, signatureKey, deviceId))
  return {
    credential_id: toBase64url(pk.credentialId),
    nonce: toBase64(nonce),
    authenticator_data: toBase64(a.authenticatorData),
    client_data_json: toBase64(a.clientDataJSON),
    signature: toBase64(a.signature),
  }
}

/** The approval of newPk by byPk. */
export async function approve(byPk: TestPasskey, newPk: TestPasskey, nonce = randomBytes(32)): Promise<ServedApproval> {
  const a = await assertWith(byPk, approvalChallenge(nonce, newPk.credentialId, newPk.publicKey))
  return {
    by_credential_id: toBase64url(byPk.credentialId),
    nonce: toBase64(nonce),
    authenticator_data: toBase64(a.authenticatorData),
    client_data_json: toBase64(a.clientDataJSON),
    signature: toBase64(a.signature),
  }
}

/** The directory entry of a passkey. */
export function served(pk: TestPasskey, o: { approval?: ServedApproval; recovered?: boolean } = {}): ServedPasskey {
  return { credential_id: toBase64url(pk.credentialId), public_key: toBase64(pk.publicKey), recovered: o.recovered ?? false, approval: o.approval }
}
