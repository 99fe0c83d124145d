// A small CBOR (RFC 8949) codec covering what WebAuthn needs: unsigned and
// negative integers, byte and text strings, arrays, maps, booleans and null.
// Maps are encoded in CTAP2 canonical order (shorter encoded key first, then
// bytewise), so encodings are deterministic.
import { concat, utf8 } from "./bytes.js"
import type { CborValue } from "./cbor-decode.js"

export { decodeCbor, decodeCborItem, type CborValue } from "./cbor-decode.js"

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

