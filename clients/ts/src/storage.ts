// Client-side persistence. Everything an app must keep across restarts (the
// session, each group's MLS state, the private halves of its key packages,
// the feed cursor) goes through ClientStore, a typed layer over a plain
// key/value interface that apps implement on IndexedDB, AsyncStorage, SQLite
// or files. MLS state contains private keys: wrap the backend in
// EncryptedKeyValueStore with a key from the platform keystore.
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js"
import { randomBytes } from "@noble/hashes/utils.js"
import { concat, fromBase64, toBase64, toHex, utf8 } from "./bytes.js"
import type { ChainSnapshot } from "./chain.js"

/** The backend an app provides. Values are opaque bytes; keys are short ASCII strings. */
export interface KeyValueStore {
  get(key: string): Promise<Uint8Array | undefined>
  put(key: string, value: Uint8Array): Promise<void>
  delete(key: string): Promise<void>
  /** Every key starting with prefix, in any order. */
  keys(prefix: string): Promise<string[]>
}

/** An in-memory KeyValueStore for tests and short-lived tools. Values are copied in and out. */
export class MemoryKeyValueStore implements KeyValueStore {
  private readonly m = new Map<string, Uint8Array>()
  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.m.get(key)
    return v ? v.slice() : undefined
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    this.m.set(key, value.slice())
  }
  async delete(key: string): Promise<void> {
    this.m.delete(key)
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.m.keys()].filter((k) => k.startsWith(prefix))
  }
  /** Every stored value, for tests that check nothing is stored in clear. */
  rawValues(): Uint8Array[] {
    return [...this.m.values()].map((v) => v.slice())
  }
}

/**
 * Encrypts every value with XChaCha20-Poly1305 under a 32-byte key, binding
 * each value to its key name (as associated data) so values cannot be
 * swapped between keys. Key names stay in clear: they hold group ids and
 * key-package refs, which the server knows anyway, never secrets.
 */
export class EncryptedKeyValueStore implements KeyValueStore {
  constructor(
    private readonly inner: KeyValueStore,
    private readonly key: Uint8Array,
  ) {
    if (key.length !== 32) throw new Error("EncryptedKeyValueStore needs a 32-byte key")
  }
  async get(key: string): Promise<Uint8Array | undefined> {
    const sealed = await this.inner.get(key)
    if (!sealed) return undefined
    if (sealed.length < 24 + 16) throw new Error(`stored value for ${key} is truncated`)
    const nonce = sealed.subarray(0, 24)
    return xchacha20poly1305(this.key, nonce, utf8.encode(key)).decrypt(sealed.subarray(24))
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    const nonce = randomBytes(24)
    const ct = xchacha20poly1305(this.key, nonce, utf8.encode(key)).encrypt(value)
    await this.inner.put(key, concat(nonce, ct))
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key)
  }
  keys(prefix: string): Promise<string[]> {
    return this.inner.keys(prefix)
  }
}

/** Who this client is on the server. */
export interface SessionRecord {
  token: string
  userId: string
  deviceId: string
  username: string
}

/** One group's MLS state (encodeGroupState) and the last feed sequence applied to it. */
export interface GroupRecord {
  groupId: Uint8Array
  state: Uint8Array
  /** Sequence of the last feed event applied to this state (0 before any). */
  lastSeq: number
}

/** The private half of one of this device's key packages. */
export interface KeyPackageRecord {
  ref: Uint8Array
  /** The MLSMessage(key_package) bytes as uploaded. */
  keyPackage: Uint8Array
  initPrivateKey: Uint8Array
  hpkePrivateKey: Uint8Array
  signaturePrivateKey: Uint8Array
  lastResort: boolean
  createdAt: number
}

/** The passkeys of one user this device trusts (pinned on first contact, then grown by approvals). */
export interface PinRecord {
  userId: string
  passkeys: { credentialId: Uint8Array; publicKey: Uint8Array }[]
  /** How many account resets (recoveries) this device has seen for the user. */
  resets: number
}

type Json = Record<string, unknown>

function enc(o: Json): Uint8Array {
  return utf8.encode(JSON.stringify(o))
}
function dec(b: Uint8Array): Json {
  return JSON.parse(utf8.decode(b)) as Json
}
function bytesField(o: Json, f: string): Uint8Array {
  const v = o[f]
  if (typeof v !== "string") throw new Error(`stored record lacks ${f}`)
  return fromBase64(v)
}

/**
 * The typed store the SDK uses. Each method is one put or get, so a crash
 * leaves every record either old or new: a group's state and its lastSeq
 * live in one record and can never disagree.
 */
export class ClientStore {
  constructor(readonly kv: KeyValueStore) {}

  async getSession(): Promise<SessionRecord | undefined> {
    const b = await this.kv.get("session")
    return b ? (dec(b) as unknown as SessionRecord) : undefined
  }
  async putSession(s: SessionRecord): Promise<void> {
    await this.kv.put("session", enc({ ...s }))
  }
  async deleteSession(): Promise<void> {
    await this.kv.delete("session")
  }
  /** Deletes everything this store holds (after the account was deleted). */
  async clear(): Promise<void> {
    for (const k of await this.kv.keys("")) await this.kv.delete(k)
  }

  /** The highest feed sequence processed (and acked) by this device; 0 at first. */
  async getCursor(): Promise<number> {
    const b = await this.kv.get("cursor")
    if (!b) return 0
    const n = Number(utf8.decode(b))
    if (!Number.isSafeInteger(n) || n < 0) throw new Error("stored cursor is corrupt")
    return n
  }
  async putCursor(seq: number): Promise<void> {
    await this.kv.put("cursor", utf8.encode(String(seq)))
  }

  async getGroup(groupId: Uint8Array): Promise<GroupRecord | undefined> {
    const b = await this.kv.get("group/" + toHex(groupId))
    if (!b) return undefined
    const o = dec(b)
    return { groupId: bytesField(o, "groupId"), state: bytesField(o, "state"), lastSeq: Number(o.lastSeq ?? 0) }
  }
  async putGroup(g: GroupRecord): Promise<void> {
    await this.kv.put(
      "group/" + toHex(g.groupId),
      enc({ groupId: toBase64(g.groupId), state: toBase64(g.state), lastSeq: g.lastSeq }),
    )
  }
  async deleteGroup(groupId: Uint8Array): Promise<void> {
    await this.kv.delete("group/" + toHex(groupId))
    await this.kv.delete("chain/" + toHex(groupId))
  }

  /** The verified part of a group's history chain (docs/verification.md), kept across restarts. */
  async getChain(groupId: Uint8Array): Promise<ChainSnapshot | undefined> {
    const b = await this.kv.get("chain/" + toHex(groupId))
    if (!b) return undefined
    const o = dec(b)
    if (!Array.isArray(o.seen)) throw new Error("stored chain is corrupt")
    return {
      seen: (o.seen as unknown[]).map((e) => {
        if (!Array.isArray(e) || typeof e[0] !== "number" || typeof e[1] !== "string") throw new Error("stored chain is corrupt")
        return { seq: e[0], hash: fromBase64(e[1]) }
      }),
    }
  }
  async putChain(groupId: Uint8Array, s: ChainSnapshot): Promise<void> {
    await this.kv.put("chain/" + toHex(groupId), enc({ seen: s.seen.map((h) => [h.seq, toBase64(h.hash)]) }))
  }
  async deleteChain(groupId: Uint8Array): Promise<void> {
    await this.kv.delete("chain/" + toHex(groupId))
  }
  /** Hex group ids of every stored chain. */
  async listChains(): Promise<string[]> {
    return (await this.kv.keys("chain/")).map((k) => k.slice("chain/".length))
  }
  /** Hex group ids of every stored group. */
  async listGroups(): Promise<string[]> {
    return (await this.kv.keys("group/")).map((k) => k.slice("group/".length))
  }

  async getKeyPackage(ref: Uint8Array): Promise<KeyPackageRecord | undefined> {
    const b = await this.kv.get("kp/" + toHex(ref))
    if (!b) return undefined
    const o = dec(b)
    return {
      ref: bytesField(o, "ref"),
      keyPackage: bytesField(o, "keyPackage"),
      initPrivateKey: bytesField(o, "initPrivateKey"),
      hpkePrivateKey: bytesField(o, "hpkePrivateKey"),
      signaturePrivateKey: bytesField(o, "signaturePrivateKey"),
      lastResort: o.lastResort === true,
      createdAt: Number(o.createdAt ?? 0),
    }
  }
  async putKeyPackage(k: KeyPackageRecord): Promise<void> {
    await this.kv.put(
      "kp/" + toHex(k.ref),
      enc({
        ref: toBase64(k.ref),
        keyPackage: toBase64(k.keyPackage),
        initPrivateKey: toBase64(k.initPrivateKey),
        hpkePrivateKey: toBase64(k.hpkePrivateKey),
        signaturePrivateKey: toBase64(k.signaturePrivateKey),
        lastResort: k.lastResort,
        createdAt: k.createdAt,
      }),
    )
  }
  async deleteKeyPackage(ref: Uint8Array): Promise<void> {
    await this.kv.delete("kp/" + toHex(ref))
  }
  async listKeyPackages(): Promise<string[]> {
    return (await this.kv.keys("kp/")).map((k) => k.slice("kp/".length))
  }

  /** The device's MLS signature key pair for a cipher suite (mls.ts), generated before the first sign-in. */
  async getSignatureKey(suite: string): Promise<{ publicKey: Uint8Array; signKey: Uint8Array } | undefined> {
    const b = await this.kv.get("sigkey/" + suite)
    if (!b) return undefined
    const o = dec(b)
    return { publicKey: bytesField(o, "publicKey"), signKey: bytesField(o, "signKey") }
  }
  async putSignatureKey(suite: string, k: { publicKey: Uint8Array; signKey: Uint8Array }): Promise<void> {
    await this.kv.put("sigkey/" + suite, enc({ publicKey: toBase64(k.publicKey), signKey: toBase64(k.signKey) }))
  }

  /** The passkeys this device pinned for a user (attest-verifier.ts), undefined before first contact. */
  async getPins(userId: string): Promise<PinRecord | undefined> {
    const b = await this.kv.get("pins/" + userId)
    if (!b) return undefined
    const o = dec(b)
    const list = Array.isArray(o.passkeys) ? (o.passkeys as Json[]) : []
    return {
      userId: String(o.userId ?? userId),
      passkeys: list.map((p) => ({ credentialId: bytesField(p, "credentialId"), publicKey: bytesField(p, "publicKey") })),
      resets: Number(o.resets ?? 0),
    }
  }
  async putPins(r: PinRecord): Promise<void> {
    await this.kv.put(
      "pins/" + r.userId,
      enc({
        userId: r.userId,
        passkeys: r.passkeys.map((p) => ({ credentialId: toBase64(p.credentialId), publicKey: toBase64(p.publicKey) })),
        resets: r.resets,
      }),
    )
  }

  /** Devices of a group that failed verification (attest-verifier.ts): sending there is refused until they are removed. */
  async getUnverified(groupId: Uint8Array): Promise<string[]> {
    const b = await this.kv.get("unverified/" + toHex(groupId))
    if (!b) return []
    const o = dec(b)
    return Array.isArray(o.devices) ? (o.devices as unknown[]).filter((d): d is string => typeof d === "string") : []
  }
  async putUnverified(groupId: Uint8Array, devices: string[]): Promise<void> {
    if (devices.length === 0) await this.kv.delete("unverified/" + toHex(groupId))
    else await this.kv.put("unverified/" + toHex(groupId), enc({ devices }))
  }
}
