// What travels inside an MLS application message: a small JSON envelope.
// The server sees only the MLS ciphertext; everything here (text,
// conversation name and colour, later attachments, receipts, typing) is
// end-to-end encrypted. Each envelope has an id the sender chooses, so a
// message seen twice (a retried send, a resync) is shown once.
//
// Envelopes are padded to size buckets before encryption so that the
// ciphertext's length says little about the text's.
//
// To add a kind (attachments, receipts, safety codes), add a member to
// Envelope and handle it in conversations.ts; receivers ignore kinds they
// do not know.
//
// An "attachment" envelope carries the pointer to an encrypted file the
// server stores (docs/attachments.md): its id, AES key and SHA-256 digest,
// and the pointer to its encrypted thumbnail. The key and digest exist
// only inside the MLS ciphertext.
import type { AttachmentPointer } from "@sovereign-im/client"

export type Envelope =
  | { type: "text"; id: string; t: number; text: string }
  /** The conversation's name and colour: only members ever see them. */
  | { type: "meta"; id: string; t: number; name?: string; color?: string }
  /** A photo, a file or (voice) a voice note. */
  | { type: "attachment"; id: string; t: number; file: AttachmentPointer; voice?: boolean }

const BUCKETS = [256, 1024, 4096, 16384, 65536]
const enc = new TextEncoder()
const dec = new TextDecoder()

/** Encodes and pads an envelope to the next bucket. */
export function encodeEnvelope(e: Envelope): Uint8Array {
  const json = JSON.stringify({ v: 1, ...e })
  const n = enc.encode(json).length
  const bucket = BUCKETS.find((b) => b >= n + 7) ?? n + 7
  // {"v":1,...} becomes {"v":1,...,"p":"    "}: 7 bytes plus the spaces.
  return enc.encode(json.slice(0, -1) + `,"p":"${" ".repeat(bucket - n - 7)}"}`)
}

/** Decodes an envelope, or undefined for anything this app does not understand. */
export function decodeEnvelope(bytes: Uint8Array): Envelope | undefined {
  let o: Record<string, unknown>
  try {
    o = JSON.parse(dec.decode(bytes)) as Record<string, unknown>
  } catch {
    return undefined
  }
  if (o.v !== 1 || typeof o.id !== "string" || typeof o.t !== "number") return undefined
  if (o.type === "text" && typeof o.text === "string") return { type: "text", id: o.id, t: o.t, text: o.text }
  if (o.type === "meta")
    return {
      type: "meta",
      id: o.id,
      t: o.t,
      name: typeof o.name === "string" ? o.name.slice(0, 100) : undefined,
      color: typeof o.color === "string" && /^#[0-9a-f]{6}$/i.test(o.color) ? o.color : undefined,
    }
  if (o.type === "attachment") {
    const file = pointer(o.file, true)
    if (file) return { type: "attachment", id: o.id, t: o.t, file, ...(o.voice === true ? { voice: true } : {}) }
  }
  return undefined
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/
const isSize = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

/** Checks a pointer received from another member: only well-formed fields are kept. */
export function pointer(v: unknown, withThumb: boolean): AttachmentPointer | undefined {
  if (typeof v !== "object" || v === null) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.id !== "string" || !/^[A-Za-z0-9-]{1,64}$/.test(o.id)) return undefined
  if (typeof o.key !== "string" || !B64.test(o.key) || o.key.length !== 44) return undefined
  if (typeof o.digest !== "string" || !B64.test(o.digest) || o.digest.length !== 44) return undefined
  if (!isSize(o.size) || !isSize(o.encryptedSize) || o.encryptedSize < o.size) return undefined
  const p: AttachmentPointer = { id: o.id, key: o.key, digest: o.digest, size: o.size, encryptedSize: o.encryptedSize }
  if (typeof o.mime === "string" && /^[\w.+-]+\/[\w.+-]+$/.test(o.mime) && o.mime.length <= 100) p.mime = o.mime.toLowerCase()
  if (typeof o.name === "string") p.name = o.name.replace(/[\u0000-\u001f\u007f/\\]/g, "_").slice(0, 200)
  if (isSize(o.width) && isSize(o.height)) {
    p.width = o.width
    p.height = o.height
  }
  if (withThumb && o.thumbnail !== undefined) {
    const th = pointer(o.thumbnail, false)
    if (th) p.thumbnail = th
  }
  return p
}

/** Conversation colours to pick from (readable in light and dark mode). */
export const COLORS = ["#3b82f6", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b"]
