// Byte helpers shared by the SDK: base64url (WebAuthn), base64 (JSON bodies:
// the API encodes every binary field as standard base64), hex, comparisons.
// Implemented without Buffer so the package runs in browsers and React Native.

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
const DECODE = new Int16Array(128).fill(-1)
for (let i = 0; i < 64; i++) {
  DECODE[B64.charCodeAt(i)] = i
  DECODE[B64URL.charCodeAt(i)] = i
}

function encode(bytes: Uint8Array, alphabet: string, pad: boolean): string {
  let out = ""
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i]! << 16
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + (pad ? "==" : "")
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + (pad ? "=" : "")
  }
  return out
}

/** Standard base64 with padding (how the API carries `[]byte` fields). */
export function toBase64(bytes: Uint8Array): string {
  return encode(bytes, B64, true)
}

/** Unpadded base64url (how WebAuthn options and responses carry bytes). */
export function toBase64url(bytes: Uint8Array): string {
  return encode(bytes, B64URL, false)
}

/**
 * Decodes base64 or base64url, padded or not. Throws on any other character
 * or an impossible length, so corrupted input never decodes silently.
 */
export function fromBase64(s: string): Uint8Array {
  let end = s.length
  while (end > 0 && s[end - 1] === "=") end--
  if (s.length - end > 2 || end % 4 === 1) throw new Error("invalid base64 length")
  const out = new Uint8Array(Math.floor((end * 3) / 4))
  let acc = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i)
    const v = c < 128 ? DECODE[c]! : -1
    if (v < 0) throw new Error(`invalid base64 character at ${i}`)
    acc = (acc << 6) | v
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  return out
}

export const fromBase64url = fromBase64

export function toHex(bytes: Uint8Array): string {
  let s = ""
  for (const b of bytes) s += b.toString(16).padStart(2, "0")
  return s
}

export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error("invalid hex")
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}

export const utf8 = {
  encode: (s: string): Uint8Array => new TextEncoder().encode(s),
  decode: (b: Uint8Array): string => new TextDecoder("utf-8", { fatal: true }).decode(b),
}

/** Copies a view into a standalone ArrayBuffer (for WebAuthn browser APIs). */
export function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(b.byteLength)
  new Uint8Array(out).set(b)
  return out
}
