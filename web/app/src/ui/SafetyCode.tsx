// "Verify safety code" (docs/verification.md "Safety codes"): a
// conversation's code at this device's epoch in large digits, its epoch, a
// QR code of (group id, epoch, digest), a camera scan that compares where
// the browser has BarcodeDetector (else people compare by eye), and the
// "marked as verified at epoch N" state kept in this browser, reset with a
// note when the code changes.
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { encode } from "uqr"
import { SAFETY_QR_PREFIX, toBase64url, type SafetyComparison } from "@sovereign-im/client"
import { plainError } from "../core/errors"
import { Safety, type SafetyView } from "../core/safety"
import { t } from "../strings"
import { ErrorText, useEngine } from "./common"

/** The QR code of a text as SVG elements (no markup strings: Trusted Types are enforced). */
function QrCode({ text }: { text: string }) {
  const qr = useMemo(() => encode(text, { ecc: "M", border: 4 }), [text])
  let d = ""
  qr.data.forEach((row, y) => row.forEach((dark, x) => dark && (d += `M${x} ${y}h1v1h-1z`)))
  return (
    <svg id="safety-qr" class="safety-qr" viewBox={`0 0 ${qr.size} ${qr.size}`} width="232" height="232" role="img" aria-label={t.safetyQrLabel} data-payload={text} shape-rendering="crispEdges">
      <rect width={qr.size} height={qr.size} fill="#fff" />
      <path d={d} fill="#000" />
    </svg>
  )
}

interface Detector {
  detect(source: HTMLVideoElement): Promise<{ rawValue: string }[]>
}
type DetectorClass = new (o: { formats: string[] }) => Detector

function detectorClass(): DetectorClass | undefined {
  const c = (globalThis as { BarcodeDetector?: DetectorClass }).BarcodeDetector
  return c && typeof navigator.mediaDevices?.getUserMedia === "function" ? c : undefined
}

/** The camera scanner: resolves with the first Sovereign safety payload it reads. */
function Scanner({ onRead, onError }: { onRead: (text: string) => void; onError: (e: unknown) => void }) {
  const video = useRef<HTMLVideoElement>(null)
  useEffect(() => {
    let stream: MediaStream | undefined
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    void (async () => {
      try {
        const Det = detectorClass()!
        const det = new Det({ formats: ["qr_code"] })
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
        if (stopped) return
        const v = video.current!
        v.srcObject = stream
        await v.play()
        const tick = async () => {
          if (stopped) return
          const found = (await det.detect(v).catch(() => [])).find((b) => b.rawValue.startsWith(SAFETY_QR_PREFIX))
          if (found) onRead(found.rawValue)
          else timer = setTimeout(() => void tick(), 250)
        }
        await tick()
      } catch (e) {
        if (!stopped) onError(e)
      }
    })()
    return () => {
      stopped = true
      clearTimeout(timer)
      stream?.getTracks().forEach((tr) => tr.stop())
    }
  }, [])
  return <video ref={video} class="safety-video" id="safety-video" muted playsInline aria-label={t.safetyScanning} />
}

const RESULT_TEXT: Record<SafetyComparison, string> = {
  match: t.safetyScanMatch,
  mismatch: t.safetyScanMismatch,
  other_group: t.safetyScanOtherGroup,
  other_epoch: t.safetyScanOtherEpoch,
  unreadable: t.safetyScanUnreadable,
}

export function SafetyPanel({ id }: { id: string }) {
  const engine = useEngine()
  const safety = useMemo(() => new Safety(() => engine.sdk), [engine])
  const [v, setV] = useState<SafetyView | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [scanning, setScanning] = useState(false)
  const [result, setResult] = useState<SafetyComparison | null>(null)

  const refresh = () => safety.view(id).then(setV, (e) => setError(plainError(e)))
  useEffect(() => {
    void refresh()
    // Any event of this conversation may be a commit (ours comes back as "own"): recompute (about 2 ms).
    return engine.sdk.on((ev) => {
      if (ev.groupId && toBase64url(ev.groupId) === id) void refresh()
    })
  }, [id])
  // A new code invalidates an earlier scan.
  useEffect(() => setResult(null), [v?.code.qr])

  if (!v) return <aside class="safety" id="safety" aria-label={t.safetyTitle}><h2>{t.safetyTitle}</h2><ErrorText text={error} /></aside>
  const mark = async () => {
    await safety.markVerified(id, v)
    await refresh()
  }
  const st = v.state
  return (
    <aside class="safety" id="safety" aria-label={t.safetyTitle} data-state={st.kind}>
      <h2>{t.safetyTitle}</h2>
      <p class="muted small">{t.safetyLead}</p>
      <p class="safety-code" id="safety-code" data-epoch={v.code.epoch}>{v.code.code}</p>
      <p class="muted small" id="safety-epoch">{t.safetyEpoch(v.code.epoch)}</p>
      <QrCode text={v.code.qr} />
      {st.kind === "verified" && <p class="safety-ok" id="safety-verified" role="status">{t.safetyVerified(st.mark.epoch)}</p>}
      {st.kind === "changed" && (
        <p class="safety-changed" id="safety-changed" role="status" data-members-changed={st.membersChanged}>
          {st.membersChanged ? t.safetyChangedMembers(st.mark.epoch) : t.safetyChangedKeys(st.mark.epoch)}
        </p>
      )}
      {result && <p class={result === "match" ? "safety-ok" : "safety-changed"} id="safety-scan-result" data-result={result} role="status">{RESULT_TEXT[result]}</p>}
      <div class="safety-actions">
        {st.kind !== "verified" && (
          <button class="btn btn-small btn-primary" type="button" id="safety-mark" onClick={() => void mark().catch((e) => setError(plainError(e)))}>
            {t.safetyMark}
          </button>
        )}
        {st.kind === "verified" && (
          <button class="btn btn-small" type="button" id="safety-unmark" onClick={() => void safety.clear(id).then(refresh)}>
            {t.safetyUnmark}
          </button>
        )}
        {detectorClass() ? (
          <button class="btn btn-small" type="button" id="safety-scan" aria-pressed={scanning} onClick={() => { setResult(null); setScanning(!scanning) }}>
            {scanning ? t.safetyScanStop : t.safetyScan}
          </button>
        ) : (
          <p class="muted small" id="safety-no-scan">{t.safetyNoScanner}</p>
        )}
      </div>
      {scanning && (
        <Scanner
          onRead={(text) => {
            setScanning(false)
            const r = safety.compare(v, text)
            setResult(r)
            if (r === "match" && st.kind !== "verified") void mark().catch((e) => setError(plainError(e)))
          }}
          onError={(e) => {
            setScanning(false)
            setError(plainError(e))
          }}
        />
      )}
      <ErrorText text={error} />
    </aside>
  )
}
