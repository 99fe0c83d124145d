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
// ciphertext.
//
// Uploads and downloads stream: a file (a Blob, e.g. a File from a picker)
// is read, padded and sealed one 64 KiB chunk at a time as each PUT part is
// sent, and a download is decrypted chunk by chunk as it arrives, so a
// device holds about one part (1 MiB) of a file of any size, never all of
// it. The whole-buffer helpers (encryptAttachment, decryptAttachment) stay
// for small data and tests.
import { sha256 } from "@noble/hashes/sha2.js"
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

/** What an upload reads its plaintext from: bytes in memory or a Blob (a File), read a chunk at a time. */
export type AttachmentSource = Uint8Array | Blob

/** Ciphertext length of an attachment of n plaintext bytes. */
export function encryptedLength(n: number): number {
  const padded = padmeLength(n + 1)
  return padded + Math.max(1, Math.ceil(padded / ATTACHMENT_CHUNK)) * TAG
}

/**
 * Produces the ciphertext of a source chunk by chunk, on demand, from any
 * chunk index (a resumed upload re-seals from where the server stopped:
 * the same key and nonce give the same bytes). The digest is fed each
 * chunk once, in order; it is final when every chunk was produced.
 */
class Sealer {
  readonly plainLength: number
  readonly paddedLength: number
  readonly chunks: number
  readonly length: number
  private readonly hash = sha256.create()
  private hashed = 0
  private key?: CryptoKey

  constructor(
    private readonly src: AttachmentSource,
    readonly rawKey: Uint8Array<ArrayBuffer>,
  ) {
    this.plainLength = src instanceof Uint8Array ? src.length : src.size
    this.paddedLength = padmeLength(this.plainLength + 1)
    this.chunks = Math.max(1, Math.ceil(this.paddedLength / ATTACHMENT_CHUNK))
    this.length = this.paddedLength + this.chunks * TAG
  }

  private async plain(i: number): Promise<Uint8Array<ArrayBuffer>> {
    const from = i * ATTACHMENT_CHUNK
    const to = Math.min(this.paddedLength, from + ATTACHMENT_CHUNK)
    const out = new Uint8Array(to - from)
    const end = Math.min(to, this.plainLength)
    if (end > from) {
      const part = this.src instanceof Uint8Array ? this.src.subarray(from, end) : new Uint8Array(await this.src.slice(from, end).arrayBuffer())
      if (part.length !== end - from) throw new Error("the file changed while it was being uploaded")
      out.set(part)
    }
    if (this.plainLength >= from && this.plainLength < to) out[this.plainLength - from] = 0x80
    return out
  }

  /** The sealed chunk i. */
  async chunk(i: number): Promise<Uint8Array<ArrayBuffer>> {
    this.key ??= await subtle().importKey("raw", this.rawKey, "AES-GCM", false, ["encrypt"])
    const ct = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv: nonce(i, i === this.chunks - 1) }, this.key, await this.plain(i)))
    if (i === this.hashed) {
      this.hash.update(ct)
      this.hashed++
    }
    return ct
  }

  /** Ciphertext bytes [start, end), sealed from the chunks that cover them. */
  async range(start: number, end: number): Promise<Uint8Array<ArrayBuffer>> {
    const full = ATTACHMENT_CHUNK + TAG
    const out = new Uint8Array(end - start)
    for (let i = Math.floor(start / full); i * full < end; i++) {
      const ct = await this.chunk(i)
      const at = i * full
      const a = Math.max(start, at)
      const b = Math.min(end, at + ct.length)
      out.set(ct.subarray(a - at, b - at), a - start)
    }
    return out
  }

  /** SHA-256 of the whole ciphertext (seals any chunk not produced yet). */
  async digest(): Promise<Uint8Array> {
    while (this.hashed < this.chunks) await this.chunk(this.hashed)
    return this.hash.digest()
  }
}

/**
 * Encrypts and uploads a file for a group, streaming (one part in memory
 * at a time) and resuming after network failures from the offset the
 * server reports; returns the pointer to put inside the MLS message.
 */
export async function uploadAttachment(t: AttachmentTransport, groupIdB64url: string, data: AttachmentSource, o: UploadOptions = {}): Promise<AttachmentPointer> {
  const f = t.fetch ?? fetch
  const sealer = new Sealer(data, globalThis.crypto.getRandomValues(new Uint8Array(32)))
  const res = await f(`${t.baseUrl}/v1/attachments`, {
    method: "POST",
    headers: { Authorization: `Bearer ${t.token()}`, "Content-Type": "application/json" },
    body: JSON.stringify({ group_id: groupIdB64url, size: sealer.length }),
    signal: o.signal,
  })
  if (res.status !== 201) throw await problem(res)
  const created = (await res.json()) as { id: string }
  await putParts(t, created.id, sealer.length, (a, b) => sealer.range(a, b), o)
  const mime = o.mime ?? (data instanceof Blob && data.type ? data.type : undefined)
  return {
    id: created.id, key: toBase64(sealer.rawKey), digest: toBase64(await sealer.digest()), size: sealer.plainLength, encryptedSize: sealer.length,
    ...(mime ? { mime } : {}), ...(o.name ? { name: o.name } : {}),
  }
}

/** Uploads ciphertext to a declared attachment, from the stored offset on. */
export async function putBytes(t: AttachmentTransport, id: string, ciphertext: Uint8Array<ArrayBuffer>, o: UploadOptions = {}): Promise<void> {
  await putParts(t, id, ciphertext.length, async (a, b) => ciphertext.subarray(a, b), o)
}

/** PUTs the parts of a declared attachment; part(a, b) gives its ciphertext bytes [a, b). */
async function putParts(t: AttachmentTransport, id: string, total: number, part: (a: number, b: number) => Promise<Uint8Array<ArrayBuffer>>, o: UploadOptions): Promise<void> {
  const f = t.fetch ?? fetch
  const size = o.partBytes ?? 1 << 20
  let offset = 0
  let failures = 0
  if (total === 0) offset = -1
  while (offset < total) {
    const start = Math.max(0, offset)
    const end = Math.min(total, start + size)
    try {
      const res = await f(`${t.baseUrl}/v1/attachments/${id}?offset=${start}`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${t.token()}`, "Content-Type": "application/octet-stream" },
        body: await part(start, end),
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

/** Options of a download. */
export interface DownloadOptions {
  onProgress?: (got: number, total: number) => void
  signal?: AbortSignal
  /** Attempts after network failures (default 5); each resumes with a Range request. */
  retries?: number
}

/** The ciphertext of an attachment as it arrives, resuming with Range after a network failure. */
async function* ciphertextOf(t: AttachmentTransport, p: AttachmentPointer, o: DownloadOptions): AsyncGenerator<Uint8Array> {
  const f = t.fetch ?? fetch
  const total = p.encryptedSize
  let got = 0
  let failures = 0
  for (let first = true; first || got < total; first = false) {
    try {
      const headers: Record<string, string> = { Authorization: `Bearer ${t.token()}` }
      if (got > 0) headers.Range = `bytes=${got}-`
      const res = await f(`${t.baseUrl}/v1/attachments/${p.id}`, { headers, signal: o.signal })
      if (res.status !== 200 && res.status !== 206) throw await problem(res)
      if (res.status === 200 && got > 0) throw new Error("the server ignored the range of a resumed download")
      const take = (value: Uint8Array) => {
        if (got + value.length > total) throw new Error("attachment is longer than its pointer says")
        got += value.length
        o.onProgress?.(got, total)
        return value
      }
      if (!res.body) {
        yield take(new Uint8Array(await res.arrayBuffer()))
      } else {
        const reader = res.body.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          yield take(value)
        }
      }
      if (got < total) throw new TypeError("download ended early")
    } catch (e) {
      if (!(e instanceof TypeError) || o.signal?.aborted || ++failures > (o.retries ?? 5)) throw e
      await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** failures)))
    }
  }
}

/**
 * Downloads an attachment and yields its plaintext as it is decrypted,
 * chunk by chunk (one 64 KiB chunk in memory at a time). Every chunk is
 * authenticated (AES-GCM, its index and the last-chunk flag in the nonce)
 * before it is yielded; the padding is held back and checked at the end,
 * and so is the digest of the whole ciphertext. If the iteration throws,
 * what was yielded must be discarded: the web app keeps the chunks aside
 * and shows nothing until the end.
 */
export async function* downloadAttachmentChunks(t: AttachmentTransport, p: AttachmentPointer, o: DownloadOptions = {}): AsyncGenerator<Uint8Array> {
  const key = await subtle().importKey("raw", fromBase64(p.key) as Uint8Array<ArrayBuffer>, "AES-GCM", false, ["decrypt"])
  const full = ATTACHMENT_CHUNK + TAG
  const chunks = Math.max(1, Math.ceil(p.encryptedSize / full))
  const hash = sha256.create()
  const buf = new Uint8Array(full)
  let fill = 0
  let index = 0
  // The padding (0x80 then zeros) may span chunks: the last non-zero byte
  // seen and the zeros after it are held back until a later non-zero byte.
  let held = -1
  let zeros = 0
  const open = async (ct: Uint8Array<ArrayBuffer>): Promise<Uint8Array[]> => {
    if (index >= chunks) throw new Error("attachment is longer than its pointer says")
    let pt: Uint8Array
    try {
      pt = new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv: nonce(index, index === chunks - 1) }, key, ct))
    } catch {
      throw new Error(`attachment chunk ${index} failed authentication`)
    }
    index++
    let k = pt.length - 1
    while (k >= 0 && pt[k] === 0) k--
    if (k < 0) {
      zeros += pt.length
      return []
    }
    const out: Uint8Array[] = []
    if (held >= 0) {
      out.push(Uint8Array.of(held))
      for (; zeros > 0; zeros -= Math.min(zeros, ATTACHMENT_CHUNK)) out.push(new Uint8Array(Math.min(zeros, ATTACHMENT_CHUNK)))
    }
    if (k > 0) out.push(pt.subarray(0, k))
    held = pt[k]!
    zeros = pt.length - k - 1
    return out
  }
  for await (const piece of ciphertextOf(t, p, o)) {
    hash.update(piece)
    for (let at = 0; at < piece.length; ) {
      const n = Math.min(full - fill, piece.length - at)
      buf.set(piece.subarray(at, at + n), fill)
      fill += n
      at += n
      if (fill === full) {
        yield* await open(buf.slice())
        fill = 0
      }
    }
  }
  if (fill > 0) yield* await open(buf.slice(0, fill))
  if (index !== chunks) throw new Error("attachment is shorter than its pointer says")
  const want = fromBase64(p.digest)
  const digest = hash.digest()
  if (digest.length !== want.length || digest.some((b, i) => b !== want[i])) throw new Error("attachment digest mismatch")
  if (held !== 0x80) throw new Error("attachment padding is invalid")
}

/** Downloads, verifies and decrypts an attachment into a Blob (streamed: the chunks become the Blob's parts). */
export async function downloadAttachmentBlob(t: AttachmentTransport, p: AttachmentPointer, o: DownloadOptions = {}): Promise<Blob> {
  const parts: Uint8Array<ArrayBuffer>[] = []
  for await (const c of downloadAttachmentChunks(t, p, o)) parts.push(c as Uint8Array<ArrayBuffer>)
  return new Blob(parts, p.mime ? { type: p.mime } : {})
}

/** Downloads (resuming with Range after a failure), verifies and decrypts into one array. */
export async function downloadAttachment(t: AttachmentTransport, p: AttachmentPointer, o: DownloadOptions = {}): Promise<Uint8Array> {
  const out = new Uint8Array(p.size)
  let at = 0
  for await (const c of downloadAttachmentChunks(t, p, o)) {
    if (at + c.length > out.length) throw new Error("attachment is longer than its pointer says")
    out.set(c, at)
    at += c.length
  }
  if (at !== out.length) throw new Error("attachment is shorter than its pointer says")
  return out
}
