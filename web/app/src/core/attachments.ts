// Photos, files and voice notes (docs/attachments.md). Sending: the file is
// encrypted on this device and uploaded through the SDK, streamed a chunk
// at a time; an image first gets a small thumbnail drawn here (canvas →
// WebP or JPEG), encrypted and uploaded the same way as a separate
// attachment. The pointer (id, key, digest, thumbnail pointer) then goes
// into an "attachment" envelope through the outbox, inside MLS. The
// message shows at once with its upload progress; a failed upload can be
// retried (the file stays in memory for this page's life).
//
// Showing: a pointer is downloaded, decrypted chunk by chunk and checked
// (each chunk's AES-GCM tag, the padding, the whole ciphertext's SHA-256
// digest) before anything is shown: until the end the chunks are only
// collected, and a failed check shows an error, never the bytes. Verified
// files become blob: URLs (img-src and media-src allow blob:), cached per
// pointer for the page's life.
import { signal } from "@preact/signals"
import { fromBase64url, type AttachmentPointer, type SovereignClient } from "@sovereign-im/client"
import { t } from "../strings"
import type { Conversations } from "./conversations"
import { plainError } from "./errors"
import type { Outbox } from "./outbox"
import { me, type Message } from "./state"

/** Longest side of a thumbnail, in pixels. */
const THUMB_MAX = 320

/** Upload progress of attachments being sent (message id → fraction 0..1). */
export const uploadProgress = signal<Record<string, number>>({})

/** The conversation list's preview line of an attachment. */
export function attachmentLabel(p: AttachmentPointer, voice?: boolean): string {
  if (voice) return t.voiceNoteLabel
  if (p.mime?.startsWith("image/")) return t.photoLabel
  return p.name ?? t.fileLabel
}

/** A size for people: 1.2 MB, 340 KB, 12 bytes. */
export function humanSize(n: number): string {
  if (n < 1000) return `${n} bytes`
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)} KB`
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 1 : 0)} MB`
}

/** A downloaded attachment's state for the UI. */
export type Fetched = { state: "loading" } | { state: "ready"; url: string } | { state: "unverified" } | { state: "failed"; error: string }

/** Raised when a downloaded attachment fails its checks (tag, padding, digest, length). */
export class UnverifiedAttachment extends Error {}

interface Pending {
  conv: string
  file: Blob
  voice: boolean
  t: number
}

/** Draws a thumbnail of an image file; undefined for what the browser cannot decode. */
export async function makeThumbnail(file: Blob): Promise<{ blob: Blob; width: number; height: number } | undefined> {
  let bmp: ImageBitmap
  try {
    bmp = await createImageBitmap(file, { imageOrientation: "from-image" })
  } catch {
    return undefined
  }
  const { width, height } = bmp
  const scale = Math.min(1, THUMB_MAX / Math.max(width, height))
  const canvas = document.createElement("canvas")
  canvas.width = Math.max(1, Math.round(width * scale))
  canvas.height = Math.max(1, Math.round(height * scale))
  canvas.getContext("2d")!.drawImage(bmp, 0, 0, canvas.width, canvas.height)
  bmp.close()
  const encode = (type: string) => new Promise<Blob | null>((r) => canvas.toBlob(r, type, 0.75))
  let blob = await encode("image/webp")
  if (!blob || blob.type !== "image/webp") blob = await encode("image/jpeg")
  return blob ? { blob, width, height } : undefined
}

export class Attachments {
  private readonly pending = new Map<string, Pending>()
  private readonly cache = new Map<string, Promise<string>>()

  constructor(
    private readonly convs: Conversations,
    private readonly outbox: Outbox,
    private readonly client: () => SovereignClient,
  ) {}

  /** Sends a file (a photo, a document, a recorded voice note) to a conversation. */
  async send(conv: string, file: Blob, opts: { voice?: boolean; name?: string } = {}): Promise<void> {
    const id = crypto.randomUUID()
    const named = opts.name ?? (file instanceof File ? file.name : undefined)
    const f = named && !(file instanceof File) ? new File([file], named, { type: file.type }) : file
    this.pending.set(id, { conv, file: f, voice: opts.voice ?? false, t: Date.now() })
    await this.upload(id)
  }

  /** Uploads a pending attachment again after a failure. */
  async retry(m: Message): Promise<void> {
    if (this.pending.has(m.id)) await this.upload(m.id)
  }

  /** Whether this page holds the file of an attachment message not uploaded yet (lost on reload). */
  isPending(id: string): boolean {
    return this.pending.has(id)
  }

  /** Whether a failed message is an upload this page can retry (else the outbox retries its send). */
  canRetryUpload(m: Message): boolean {
    return !m.attachment && this.pending.has(m.id)
  }

  private show(id: string, p: Pending, state: Message["state"], error?: string): Promise<boolean> {
    const who = me.value!
    const name = p.file instanceof File ? p.file.name : ""
    return this.convs.putMessage(
      { id, conv: p.conv, t: p.t, kind: "attachment", text: name, ...(p.voice ? { voice: true } : {}), fromUser: who.userId, fromName: who.username, fromDevice: who.deviceId, mine: true, state, error },
      { replace: true },
    )
  }

  private async upload(id: string): Promise<void> {
    const p = this.pending.get(id)!
    const client = this.client()
    const gid = fromBase64url(p.conv)
    const setProgress = (x: number) => (uploadProgress.value = { ...uploadProgress.value, [id]: x })
    await this.show(id, p, "sending")
    setProgress(0)
    try {
      const mime = p.file.type || "application/octet-stream"
      const name = p.file instanceof File ? p.file.name : undefined
      let thumbnail: AttachmentPointer | undefined
      let dims: { width: number; height: number } | undefined
      if (mime.startsWith("image/") && !p.voice) {
        const th = await makeThumbnail(p.file)
        if (th) {
          thumbnail = await client.uploadAttachment(gid, th.blob, { mime: th.blob.type })
          dims = { width: th.width, height: th.height }
        }
      }
      const ptr = await client.uploadAttachment(gid, p.file, { mime, ...(name ? { name } : {}), onProgress: (sent, total) => setProgress(sent / total) })
      const full: AttachmentPointer = { ...ptr, ...(dims ?? {}), ...(thumbnail ? { thumbnail } : {}) }
      // What this device uploaded it may show without downloading again.
      this.cache.set(full.id, Promise.resolve(URL.createObjectURL(p.file)))
      if (thumbnail) this.cache.set(thumbnail.id, this.cache.get(full.id)!)
      this.pending.delete(id)
      await this.outbox.sendAttachment(p.conv, id, p.t, full, p.voice)
    } catch (e) {
      await this.show(id, p, "failed", uploadError(e))
    } finally {
      const { [id]: _, ...rest } = uploadProgress.value
      uploadProgress.value = rest
    }
  }

  /**
   * A verified blob: URL of an attachment's plaintext. Rejects with
   * UnverifiedAttachment when a check fails (nothing is shown then) and
   * with the network's error when it cannot be fetched (retry later).
   */
  url(p: AttachmentPointer): Promise<string> {
    let u = this.cache.get(p.id)
    if (!u) {
      u = this.fetch(p)
      this.cache.set(p.id, u)
      u.catch(() => this.cache.delete(p.id))
    }
    return u
  }

  private async fetch(p: AttachmentPointer): Promise<string> {
    const parts: Uint8Array<ArrayBuffer>[] = []
    let n = 0
    try {
      for await (const c of this.client().downloadAttachmentChunks(p)) {
        parts.push(c as Uint8Array<ArrayBuffer>)
        n += c.length
      }
    } catch (e) {
      const status = (e as { status?: number }).status
      if (e instanceof TypeError || status !== undefined) throw e
      throw new UnverifiedAttachment((e as Error).message)
    }
    if (n !== p.size) throw new UnverifiedAttachment(`attachment is ${n} bytes, its pointer says ${p.size}`)
    return URL.createObjectURL(new Blob(parts, { type: safeType(p.mime) }))
  }
}

/**
 * The type a blob: URL is made with: images, audio and video as they are;
 * anything else as bytes to download (never rendered as a page).
 */
function safeType(mime?: string): string {
  if (mime && /^(image\/(png|jpeg|gif|webp|avif)|audio\/[\w.+-]+|video\/[\w.+-]+)$/.test(mime)) return mime
  return "application/octet-stream"
}

function uploadError(e: unknown): string {
  const status = (e as { status?: number }).status
  if (status === 413) return t.tooLarge
  if (status === 507) return t.quotaFull
  return plainError(e)
}
