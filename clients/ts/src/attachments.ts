// Attachments: files encrypted on the device, uploaded outside the message
// path, and referred to from inside an MLS message by an AttachmentPointer
// (id, key, digest). The server stores and serves ciphertext only; it never
// sees the key or the digest (docs/attachments.md).
//
// Format: the plaintext is padded (0x80 then zeros, to a Padmé size bucket
// that blurs the exact length) and cut into 64 KiB chunks, each sealed with
// AES-256-GCM under a fresh random key, nonce = 7 zero bytes ‖ chunk index
// (u32 big-endian) ‖ last-chunk flag: chunks cannot be reordered, dropped or
// truncated without failing. The digest is SHA-256 over the whole
// ciphertext and is checked before anything is decrypted.
import { fromBase64, toBase64 } from "./bytes.js"

export const ATTACHMENT_CHUNK = 64 * 1024
const TAG = 16

/** What travels inside the MLS message that refers to an attachment. */
export interface AttachmentPointer {
  id: string
  /** AES-256-GCM key, base64. */
  key: string
  /** SHA-256 of the ciphertext, base64. */
  digest: string
  /** Plaintext length in bytes. */
  size: number
  /** Ciphertext length in bytes (what the server stores). */
  encryptedSize: number
  mime?: string
  name?: string
  width?: number
  height?: number
  /** An encrypted thumbnail (images), itself an attachment. */
  thumbnail?: AttachmentPointer
}

export interface AttachmentTransport {
  baseUrl: string
  token: () => string
  fetch?: typeof fetch
}

export interface UploadOptions {
  mime?: string
  name?: string
  /** Bytes per PUT (default 1 MiB); each one is a resume point. */
  partBytes?: number
  onProgress?: (sent: number, total: number) => void
  /** Attempts per part after network failures (default 5). */
  retries?: number
  signal?: AbortSignal
}

/** Padmé: the padded length leaks O(log log n) bits of n. */
export function padmeLength(n: number): number {
  if (n < 2) return n
  const e = Math.floor(Math.log2(n))
  const s = Math.floor(Math.log2(e)) + 1
  const lastBits = e - s
  const mask = 2 ** lastBits - 1
  return Math.floor((n + mask) / 2 ** lastBits) * 2 ** lastBits
}

function nonce(i: number, last: boolean): Uint8Array<ArrayBuffer> {
  const n = new Uint8Array(12)
  new DataView(n.buffer).setUint32(7, i)
  n[11] = last ? 1 : 0
  return n
}

const subtle = (): SubtleCrypto => globalThis.crypto.subtle

/** Encrypts data into the attachment format; returns ciphertext, key and digest. */
export async function encryptAttachment(data: Uint8Array): Promise<{ ciphertext: Uint8Array<ArrayBuffer>; key: Uint8Array; digest: Uint8Array }> {
  const padded = new Uint8Array(padmeLength(data.length + 1))
  padded.set(data)
  padded[data.length] = 0x80
  const rawKey = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const key = await subtle().importKey("raw", rawKey, "AES-GCM", false, ["encrypt"])
  const chunks = Math.max(1, Math.ceil(padded.length / ATTACHMENT_CHUNK))
  const out = new Uint8Array(padded.length + chunks * TAG)
  for (let i = 0; i < chunks; i++) {
    const part = padded.subarray(i * ATTACHMENT_CHUNK, Math.min(padded.length, (i + 1) * ATTACHMENT_CHUNK))
    const ct = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv: nonce(i, i === chunks - 1) }, key, part))
    out.set(ct, i * (ATTACHMENT_CHUNK + TAG))
  }
  const digest = new Uint8Array(await subtle().digest("SHA-256", out))
  return { ciphertext: out, key: rawKey, digest }
}

/** Checks the digest, then decrypts every chunk and strips the padding. */
export async function decryptAttachment(ciphertext: Uint8Array<ArrayBuffer>, p: Pick<AttachmentPointer, "key" | "digest">): Promise<Uint8Array> {
  const digest = new Uint8Array(await subtle().digest("SHA-256", ciphertext))
  const want = fromBase64(p.digest)
  if (digest.length !== want.length || digest.some((b, i) => b !== want[i])) throw new Error("attachment digest mismatch")
  const key = await subtle().importKey("raw", fromBase64(p.key) as Uint8Array<ArrayBuffer>, "AES-GCM", false, ["decrypt"])
  const full = ATTACHMENT_CHUNK + TAG
  const chunks = Math.max(1, Math.ceil(ciphertext.length / full))
  const out = new Uint8Array(ciphertext.length - chunks * TAG)
  for (let i = 0; i < chunks; i++) {
    const part = ciphertext.subarray(i * full, Math.min(ciphertext.length, (i + 1) * full))
    const pt = new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv: nonce(i, i === chunks - 1) }, key, part))
    out.set(pt, i * ATTACHMENT_CHUNK)
  }
  let end = out.length - 1
  while (end >= 0 && out[end] === 0) end--
  if (end < 0 || out[end] !== 0x80) throw new Error("attachment padding is invalid")
  return out.subarray(0, end)
}

async function problem(res: Response): Promise<Error> {
  let detail = res.statusText
  try {
    const p = (await res.json()) as { detail?: string; code?: string }
    detail = `${p.code ?? ""} ${p.detail ?? ""}`.trim()
  } catch {
    /* not JSON */
  }
  const e = new Error(`attachment request failed: ${res.status} ${detail}`) as Error & { status: number }
  e.status = res.status
  return e
}

/** Stored bytes of an upload (where to resume). */
export async function uploadOffset(t: AttachmentTransport, id: string): Promise<number> {
  const f = t.fetch ?? fetch
  const res = await f(`${t.baseUrl}/v1/attachments/${id}/upload`, { headers: { Authorization: `Bearer ${t.token()}` } })
  if (!res.ok) throw await problem(res)
  return ((await res.json()) as { offset: number }).offset
}

/**
 * Encrypts and uploads data for a group, resuming after network failures
 * from the offset the server reports; returns the pointer to put inside
 * the MLS message.
 */
export async function uploadAttachment(t: AttachmentTransport, groupIdB64url: string, data: Uint8Array, o: UploadOptions = {}): Promise<AttachmentPointer> {
  const f = t.fetch ?? fetch
  const { ciphertext, key, digest } = await encryptAttachment(data)
  const res = await f(`${t.baseUrl}/v1/attachments`, {
    method: "POST",
    headers: { Authorization: `Bearer ${t.token()}`, "Content-Type": "application/json" },
    body: JSON.stringify({ group_id: groupIdB64url, size: ciphertext.length }),
    signal: o.signal,
  })
  if (res.status !== 201) throw await problem(res)
  const created = (await res.json()) as { id: string }
  await putBytes(t, created.id, ciphertext, o)
  return {
    id: created.id, key: toBase64(key), digest: toBase64(digest), size: data.length, encryptedSize: ciphertext.length,
    ...(o.mime ? { mime: o.mime } : {}), ...(o.name ? { name: o.name } : {}),
  }
}

/** Uploads ciphertext to a declared attachment, from the stored offset on. */
export async function putBytes(t: AttachmentTransport, id: string, ciphertext: Uint8Array<ArrayBuffer>, o: UploadOptions = {}): Promise<void> {
  const f = t.fetch ?? fetch
  const part = o.partBytes ?? 1 << 20
  const total = ciphertext.length
  let offset = 0
  let failures = 0
  if (total === 0) offset = -1
  while (offset < total) {
    const start = Math.max(0, offset)
    const end = Math.min(total, start + part)
    try {
      const res = await f(`${t.baseUrl}/v1/attachments/${id}?offset=${start}`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${t.token()}`, "Content-Type": "application/octet-stream" },
        body: ciphertext.subarray(start, end),
        signal: o.signal,
      })
      if (res.status === 409) {
        const p = (await res.json()) as { upload_offset?: number }
        offset = p.upload_offset ?? (await uploadOffset(t, id))
        continue
      }
      if (!res.ok) {
        const err = await problem(res)
        if (res.status >= 500 || res.status === 400) throw Object.assign(err, { retry: true })
        throw err
      }
      const st = (await res.json()) as { offset: number; complete: boolean }
      offset = st.complete ? total : st.offset
      failures = 0
      o.onProgress?.(Math.min(offset, total), total)
    } catch (e) {
      const retry = e instanceof TypeError || (e as { retry?: boolean }).retry
      if (!retry || o.signal?.aborted || ++failures > (o.retries ?? 5)) throw e
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** failures)))
      offset = await uploadOffset(t, id)
    }
  }
}

/** Downloads (resuming with Range after a failure), verifies and decrypts. */
export async function downloadAttachment(
  t: AttachmentTransport,
  p: AttachmentPointer,
  o: { onProgress?: (got: number, total: number) => void; signal?: AbortSignal; retries?: number } = {},
): Promise<Uint8Array> {
  const f = t.fetch ?? fetch
  const buf = new Uint8Array(p.encryptedSize)
  let got = 0
  let failures = 0
  while (got < buf.length || (buf.length === 0 && failures === 0 && got === 0)) {
    try {
      const headers: Record<string, string> = { Authorization: `Bearer ${t.token()}` }
      if (got > 0) headers.Range = `bytes=${got}-`
      const res = await f(`${t.baseUrl}/v1/attachments/${p.id}`, { headers, signal: o.signal })
      if (res.status !== 200 && res.status !== 206) throw await problem(res)
      if (res.status === 200) got = 0
      if (!res.body) {
        const all = new Uint8Array(await res.arrayBuffer())
        if (got + all.length > buf.length) throw new Error("attachment is longer than its pointer says")
        buf.set(all, got)
        got += all.length
      } else {
        const reader = res.body.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          if (got + value.length > buf.length) throw new Error("attachment is longer than its pointer says")
          buf.set(value, got)
          got += value.length
          o.onProgress?.(got, buf.length)
        }
      }
      if (buf.length === 0) break
      if (got < buf.length) throw new TypeError("download ended early")
    } catch (e) {
      if (!(e instanceof TypeError) || o.signal?.aborted || ++failures > (o.retries ?? 5)) throw e
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** failures)))
    }
  }
  return decryptAttachment(buf, p)
}
