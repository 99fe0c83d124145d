// The CBOR (RFC 8949) decoder the SDK needs in production: COSE_Key public
// keys (attest.ts) and attestation objects. The encoder, used by the test
// authenticator only, is in cbor.ts (exported from "@sovereign-im/client/testing").
import { utf8 } from "./bytes.js"

export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | CborValue[]
  | Map<CborValue, CborValue>

/**
 * Decodes one CBOR item starting at offset; returns it and the offset after
 * it. Integers beyond 2^53 come back as bigint. Rejects indefinite lengths,
 * tags, floats, truncated input and maps with duplicate keys.
 */
export function decodeCborItem(b: Uint8Array, offset = 0, depth = 0): [CborValue, number] {
  if (depth > 16) throw new Error("cbor: nesting too deep")
  if (offset >= b.length) throw new Error("cbor: truncated")
  const ib = b[offset++]!
  const major = ib >> 5
  const info = ib & 31
  let n: bigint
  if (info < 24) n = BigInt(info)
  else if (info <= 27) {
    const len = 1 << (info - 24)
    if (offset + len > b.length) throw new Error("cbor: truncated")
    n = 0n
    for (let i = 0; i < len; i++) n = (n << 8n) | BigInt(b[offset + i]!)
    offset += len
  } else throw new Error("cbor: indefinite lengths and reserved values are not supported")
  const small = (x: bigint): number | bigint => (x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x)
  const count = (): number => {
    if (n > BigInt(b.length - offset) && major !== 4 && major !== 5) throw new Error("cbor: truncated")
    if (n > 1_000_000n) throw new Error("cbor: too many items")
    return Number(n)
  }
  switch (major) {
    case 0:
      return [small(n), offset]
    case 1:
      return [small(-1n - n), offset]
    case 2:
    case 3: {
      const len = count()
      const bytes = b.slice(offset, offset + len)
      return [major === 2 ? bytes : utf8.decode(bytes), offset + len]
    }
    case 4: {
      const len = count()
      const arr: CborValue[] = []
      for (let i = 0; i < len; i++) {
        const [item, next] = decodeCborItem(b, offset, depth + 1)
        arr.push(item)
        offset = next
      }
      return [arr, offset]
    }
    case 5: {
      const len = count()
      const m = new Map<CborValue, CborValue>()
      for (let i = 0; i < len; i++) {
        const [k, afterKey] = decodeCborItem(b, offset, depth + 1)
        const [val, afterVal] = decodeCborItem(b, afterKey, depth + 1)
        if (m.has(k)) throw new Error("cbor: duplicate map key")
        m.set(k, val)
        offset = afterVal
      }
      return [m, offset]
    }
    case 7:
      if (info === 20) return [false, offset]
      if (info === 21) return [true, offset]
      if (info === 22) return [null, offset]
      throw new Error("cbor: unsupported simple value or float")
    default:
      throw new Error("cbor: tags are not supported")
  }
}

/** Decodes exactly one CBOR item that must span all of b. */
export function decodeCbor(b: Uint8Array): CborValue {
  const [v, end] = decodeCborItem(b, 0)
  if (end !== b.length) throw new Error("cbor: trailing bytes")
  return v
}
