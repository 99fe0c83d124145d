// Local storage in IndexedDB through Dexie. Every value that carries
// content (MLS state, keys, messages, conversation names) is sealed with
// AES-256-GCM under a key made by WebCrypto as non-extractable: script can
// use it but never read it, so a copy of the database files is useless
// without this browser profile. Only ids, times and ordering stay in clear.
import Dexie, { type Table } from "dexie"

interface KeyRow { id: string; key: CryptoKey }
interface SealedRow { k: string; v: Uint8Array }
export interface ConvRow { id: string; t: number; v: Uint8Array }
export interface MsgRow { id: string; conv: string; t: number; v: Uint8Array }
export interface OutRow { id: string; t: number; v: Uint8Array }

export class AppDB extends Dexie {
  keys!: Table<KeyRow, string>
  kv!: Table<SealedRow, string>
  convs!: Table<ConvRow, string>
  msgs!: Table<MsgRow, string>
  outbox!: Table<OutRow, string>
  constructor(name = "sovereign") {
    super(name)
    this.version(1).stores({
      keys: "id",
      kv: "k",
      convs: "id",
      msgs: "id, [conv+t]",
      outbox: "id, t",
    })
  }
}

const enc = new TextEncoder()
const dec = new TextDecoder()

/** Seals and opens values with the profile's non-extractable key; aad binds a value to where it is stored. */
export class Sealer {
  private constructor(private readonly key: CryptoKey) {}

  static async open(db: AppDB): Promise<Sealer> {
    const row = await db.keys.get("seal")
    if (row) return new Sealer(row.key)
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"])
    // Two tabs starting at once: the first key written wins, both use it.
    await db.transaction("rw", db.keys, async () => {
      if (!(await db.keys.get("seal"))) await db.keys.put({ id: "seal", key })
    })
    return new Sealer((await db.keys.get("seal"))!.key)
  }

  async seal(aad: string, value: Uint8Array): Promise<Uint8Array> {
    const iv = crypto.getRandomValues(new Uint8Array(12))
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(aad) }, this.key, value as BufferSource))
    const out = new Uint8Array(12 + ct.length)
    out.set(iv)
    out.set(ct, 12)
    return out
  }

  async open(aad: string, sealed: Uint8Array): Promise<Uint8Array> {
    const iv = sealed.slice(0, 12)
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode(aad) }, this.key, sealed.subarray(12) as BufferSource))
  }

  async sealJSON(aad: string, o: unknown): Promise<Uint8Array> {
    return this.seal(aad, enc.encode(JSON.stringify(o)))
  }
  async openJSON<T>(aad: string, sealed: Uint8Array): Promise<T> {
    return JSON.parse(dec.decode(await this.open(aad, sealed))) as T
  }
}

/** The SDK's key/value backend on IndexedDB, every value sealed (the key name is the associated data). */
export class SealedKeyValueStore {
  constructor(private readonly db: AppDB, private readonly sealer: Sealer) {}
  async get(key: string): Promise<Uint8Array | undefined> {
    const row = await this.db.kv.get(key)
    return row ? this.sealer.open("kv/" + key, row.v) : undefined
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    await this.db.kv.put({ k: key, v: await this.sealer.seal("kv/" + key, value) })
  }
  async delete(key: string): Promise<void> {
    await this.db.kv.delete(key)
  }
  async keys(prefix: string): Promise<string[]> {
    return (await this.db.kv.where("k").startsWith(prefix).primaryKeys()) as string[]
  }
}
