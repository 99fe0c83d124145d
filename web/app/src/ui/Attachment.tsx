// Attachments in a conversation: how a photo, a file or a voice note is
// shown (MessageBody hands attachment messages here), and the composer's
// attach and record buttons. Nothing is shown before it is verified
// (core/attachments.ts): a photo appears once its thumbnail is downloaded,
// decrypted and its digest checked; a failed check shows an error.
import { useEffect, useRef, useState } from "preact/hooks"
import type { AttachmentPointer } from "@sovereign-im/client"
import { humanSize, UnverifiedAttachment, uploadProgress, type Fetched } from "../core/attachments"
import { plainError } from "../core/errors"
import type { Message } from "../core/state"
import { t } from "../strings"
import { useEngine } from "./common"

/** Downloads and verifies a pointer when asked (auto: at once); the state for the UI and a function to (re)try. */
function useVerified(p: AttachmentPointer | undefined, auto: boolean): [Fetched | null, () => void] {
  const engine = useEngine()
  const [f, setF] = useState<Fetched | null>(null)
  const live = useRef(true)
  useEffect(() => () => void (live.current = false), [])
  const run = () => {
    if (!p) return
    setF({ state: "loading" })
    engine.attachments.url(p).then(
      (url) => live.current && setF({ state: "ready", url }),
      (e) => live.current && setF(e instanceof UnverifiedAttachment ? { state: "unverified" } : { state: "failed", error: plainError(e) }),
    )
  }
  useEffect(() => {
    if (auto) run()
  }, [p?.id, auto])
  return [f, run]
}

function Problem({ f, retry }: { f: Fetched | null; retry: () => void }) {
  if (f?.state === "unverified") return <p class="att-error" role="alert">{t.attachmentUnverified}</p>
  if (f?.state === "failed")
    return (
      <button class="link att-error" type="button" onClick={retry} title={f.error}>
        {t.attachmentFailed}
      </button>
    )
  if (f?.state === "loading") return <span class="att-loading">{t.downloading}</span>
  return null
}

/** A photo: its verified thumbnail inline; a tap opens the full image. */
function Photo({ p }: { p: AttachmentPointer }) {
  const [thumb, retryThumb] = useVerified(p.thumbnail ?? p, true)
  const [open, setOpen] = useState(false)
  const [full, loadFull] = useVerified(p, false)
  const ratio = p.width && p.height ? `${p.width} / ${p.height}` : undefined
  return (
    <div class="att-photo">
      {thumb?.state === "ready" ? (
        <button class="att-thumb-btn" type="button" aria-label={t.openPhoto} onClick={() => { setOpen(true); loadFull() }}>
          <img class="att-thumb" src={thumb.url} alt={p.name ?? t.photoLabel} style={ratio ? { aspectRatio: ratio } : undefined} />
        </button>
      ) : (
        <Problem f={thumb} retry={retryThumb} />
      )}
      {open && (
        <div class="att-viewer" role="dialog" aria-label={p.name ?? t.photoLabel} onClick={() => setOpen(false)}>
          {full?.state === "ready" ? <img class="att-full" src={full.url} alt={p.name ?? t.photoLabel} /> : <Problem f={full} retry={loadFull} />}
          <button class="btn btn-small att-close" type="button" onClick={() => setOpen(false)}>{t.closePhoto}</button>
        </div>
      )}
    </div>
  )
}

/** A voice note: an audio player of the verified recording. */
function Voice({ p }: { p: AttachmentPointer }) {
  const [f, retry] = useVerified(p, true)
  if (f?.state === "ready") return <audio class="att-voice" controls preload="metadata" src={f.url} />
  return <Problem f={f} retry={retry} />
}

/** Any other file: offered for download with its name and size (fetched, verified, then saved). */
function FileLink({ p }: { p: AttachmentPointer }) {
  const [f, fetchIt] = useVerified(p, false)
  const [want, setWant] = useState(false)
  const name = p.name || t.fileLabel
  useEffect(() => {
    if (!want || f?.state !== "ready") return
    setWant(false)
    const a = document.createElement("a")
    a.href = f.url
    a.download = name
    a.click()
  }, [want, f?.state])
  return (
    <div class="att-file">
      <button class="btn btn-small att-download" type="button" onClick={() => { setWant(true); if (f?.state !== "ready") fetchIt() }}>
        {t.downloadFile(name, humanSize(p.size))}
      </button>
      {f?.state !== "ready" && <Problem f={f} retry={fetchIt} />}
    </div>
  )
}

/** The body of an attachment message. */
export function AttachmentBody({ m }: { m: Message }) {
  const engine = useEngine()
  const progress = uploadProgress.value[m.id]
  const p = m.attachment
  if (!p) {
    return (
      <div class="att-pending">
        <span class="att-name">{m.voice ? t.voiceNoteLabel : m.text || t.fileLabel}</span>
        {progress !== undefined && <progress class="att-progress" max={1} value={progress} aria-label={t.uploading(Math.round(progress * 100))} />}
        {m.mine && !engine.attachments.isPending(m.id) && <span class="att-error">{t.uploadInterrupted}</span>}
      </div>
    )
  }
  if (m.voice) return <Voice p={p} />
  if (p.mime?.startsWith("image/")) return <Photo p={p} />
  return <FileLink p={p} />
}

/** The composer's attach button (a file picker) and voice-note button. */
export function AttachControls({ conv }: { conv: string }) {
  const engine = useEngine()
  const input = useRef<HTMLInputElement>(null)
  const [rec, setRec] = useState<MediaRecorder | null>(null)
  const [error, setError] = useState<string | null>(null)
  const sendFiles = (files: FileList | null) => {
    for (const f of files ?? []) void engine.attachments.send(conv, f)
  }
  // Tap to start and tap again to send, or hold and release to send.
  const recRef = useRef<MediaRecorder | null>(null)
  const pressedAt = useRef(0)
  const stopWhenStarted = useRef(false)
  const stopVoice = () => {
    recRef.current?.stop()
    recRef.current = null
  }
  const startVoice = async () => {
    setError(null)
    stopWhenStarted.current = false
    let stream: MediaStream
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true })
    } catch {
      setError(t.micRefused)
      return
    }
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((x) => MediaRecorder.isTypeSupported(x))
    const r = new MediaRecorder(stream, type ? { mimeType: type } : undefined)
    const parts: Blob[] = []
    r.ondataavailable = (e) => e.data.size > 0 && parts.push(e.data)
    r.onstop = () => {
      for (const tr of stream.getTracks()) tr.stop()
      setRec(null)
      const mime = (r.mimeType || type || "audio/webm").split(";")[0]!
      const ext = mime.split("/")[1] === "mp4" ? "m4a" : mime.split("/")[1]
      if (parts.length) void engine.attachments.send(conv, new Blob(parts, { type: mime }), { voice: true, name: `voice-note.${ext}` })
    }
    r.start(250)
    recRef.current = r
    setRec(r)
    if (stopWhenStarted.current) {
      // Released after a hold while the microphone was still opening.
      stopWhenStarted.current = false
      setTimeout(stopVoice, 250)
    }
  }
  const HOLD_MS = 600
  const onDown = (e: PointerEvent) => {
    if (e.button !== 0) return
    if (recRef.current) {
      stopVoice()
      pressedAt.current = 0
      return
    }
    pressedAt.current = Date.now()
    void startVoice()
  }
  const onUp = () => {
    // Released after a hold: send. After a short tap: keep recording until the next tap.
    if (pressedAt.current && Date.now() - pressedAt.current >= HOLD_MS) {
      if (recRef.current) stopVoice()
      else stopWhenStarted.current = true
    }
    pressedAt.current = 0
  }
  const onKey = (e: MouseEvent) => {
    if (e.detail !== 0) return // pointer clicks are handled by down/up; detail 0 is the keyboard
    if (recRef.current) stopVoice()
    else void startVoice()
  }
  return (
    <>
      <input ref={input} id="attach-input" type="file" multiple hidden onChange={(e) => { sendFiles(e.currentTarget.files); e.currentTarget.value = "" }} />
      <button id="attach" class="btn icon-btn" type="button" aria-label={t.attach} title={t.attach} onClick={() => input.current?.click()}>
        +
      </button>
      <button id="voice" class={"btn icon-btn" + (rec ? " recording" : "")} type="button" aria-pressed={rec !== null}
        aria-label={rec ? t.stopRecording : t.recordVoice} title={rec ? t.stopRecording : t.recordVoice} onPointerDown={onDown} onPointerUp={onUp} onClick={onKey}>
        {rec ? "■" : "●"}
      </button>
      {rec && <span class="att-recording" role="status">{t.recording}</span>}
      {error && <span class="error att-mic-error" role="alert">{error}</span>}
    </>
  )
}

/** Paste and drop handlers for a conversation: files pasted or dropped are sent. */
export function useDropAndPaste(conv: string) {
  const engine = useEngine()
  const [over, setOver] = useState(false)
  const take = (files: FileList | undefined | null) => {
    const list = [...(files ?? [])]
    for (const f of list) void engine.attachments.send(conv, f)
    return list.length > 0
  }
  return {
    over,
    handlers: {
      onPaste: (e: ClipboardEvent) => { if (take(e.clipboardData?.files)) e.preventDefault() },
      onDragOver: (e: DragEvent) => { if (e.dataTransfer?.types.includes("Files")) { e.preventDefault(); setOver(true) } },
      onDragLeave: () => setOver(false),
      onDrop: (e: DragEvent) => { setOver(false); if (take(e.dataTransfer?.files)) e.preventDefault() },
    },
  }
}
