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

export type Envelope =
  | { type: "text"; id: string; t: number; text: string }
  /** The conversation's name and colour: only members ever see them. */
  | { type: "meta"; id: string; t: number; name?: string; color?: string }

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
  return undefined
}

/** Conversation colours to pick from (readable in light and dark mode). */
export const COLORS = ["#3b82f6", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b"]
