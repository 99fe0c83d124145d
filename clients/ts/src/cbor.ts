// A small CBOR (RFC 8949) codec covering what WebAuthn needs: unsigned and
// negative integers, byte and text strings, arrays, maps, booleans and null.
// Maps are encoded in CTAP2 canonical order (shorter encoded key first, then
// bytewise), so encodings are deterministic.
import { concat, utf8 } from "./bytes.js"

export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | CborValue[]
  | Map<CborValue, CborValue>

function head(major: number, n: number | bigint): Uint8Array {
  const v = BigInt(n)
  if (v < 0n) throw new Error("cbor: negative length")
  const m = major << 5
  if (v < 24n) return Uint8Array.of(m | Number(v))
  if (v < 0x100n) return Uint8Array.of(m | 24, Number(v))
  if (v < 0x10000n) return Uint8Array.of(m | 25, Number(v >> 8n), Number(v & 0xffn))
  if (v < 0x100000000n) {
    const out = new Uint8Array(5)
    out[0] = m | 26
    new DataView(out.buffer).setUint32(1, Number(v))
    return out
  }
  if (v < 0x10000000000000000n) {
    const out = new Uint8Array(9)
    out[0] = m | 27
    new DataView(out.buffer).setBigUint64(1, v)
    return out
  }
  throw new Error("cbor: integer out of range")
}

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return 0
}

export function encodeCbor(v: CborValue): Uint8Array {
  if (typeof v === "number" || typeof v === "bigint") {
    if (typeof v === "number" && !Number.isSafeInteger(v)) throw new Error("cbor: only integers are supported")
    const b = BigInt(v)
    return b >= 0n ? head(0, b) : head(1, -1n - b)
  }
  if (typeof v === "string") {
    const s = utf8.encode(v)
    return concat(head(3, s.length), s)
  }
  if (typeof v === "boolean") return Uint8Array.of(v ? 0xf5 : 0xf4)
  if (v === null) return Uint8Array.of(0xf6)
  if (v instanceof Uint8Array) return concat(head(2, v.length), v)
  if (Array.isArray(v)) return concat(head(4, v.length), ...v.map(encodeCbor))
  if (v instanceof Map) {
    const entries = [...v.entries()].map(([k, val]) => [encodeCbor(k), encodeCbor(val)] as const)
    entries.sort((x, y) => compareKeys(x[0], y[0]))
    for (let i = 1; i < entries.length; i++) {
      if (compareKeys(entries[i - 1]![0], entries[i]![0]) === 0) throw new Error("cbor: duplicate map key")
    }
    return concat(head(5, entries.length), ...entries.flatMap(([k, val]) => [k, val]))
  }
  throw new Error("cbor: unsupported value")
}

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
