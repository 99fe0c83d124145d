// Settings for my account's security: my passkeys (add, remove), ending
// my other sessions, deleting my account. The server asks for a fresh
// passkey assertion (step-up) before removing, ending and deleting; adding
// one is approved instead by an existing passkey over the new one's key,
// right after it is created (docs/verification.md). Each action shows one
// extra passkey prompt.
import { useEffect, useState } from "preact/hooks"
import type { Schemas } from "@sovereign-im/client"
import { plainError } from "../core/errors"
import { me, showToast } from "../core/state"
import { t } from "../strings"
import { ErrorText, useEngine, when } from "./common"
import { go } from "./router"

type Passkey = Schemas["PasskeyInfo"]

export function PasskeysSetting() {
  const engine = useEngine()
  const [list, setList] = useState<Passkey[] | null>(null)
  const [name, setName] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [approving, setApproving] = useState(false)
  const load = () => engine.sdk.passkeys().then(setList, (e) => setError(plainError(e)))
  useEffect(() => void load(), [])

  const run = async (f: () => Promise<void>, done: string) => {
    setBusy(true)
    setError(null)
    try {
      await f()
      showToast(done)
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
      await load()
    }
  }

  return (
    <section class="field" aria-labelledby="passkeys-title">
      <h2 class="section-title" id="passkeys-title">{t.passkeysTitle}</h2>
      <p class="muted small">{t.passkeysLead}</p>
      <ul class="devices" id="passkeys">
        {list?.map((k) => (
          <li key={k.id} class="device" data-passkey={k.id}>
            <div class="device-main">
              <strong class="passkey-name">{k.name}</strong>
              {k.backed_up && <span class="tag">{t.passkeySynced}</span>}
              {k.clone_detected && <span class="tag tag-danger">{t.passkeyBlocked}</span>}
              <span class="muted small">
                {t.passkeyCreated(when(Date.parse(k.created_at)))}
                {k.last_used_at ? " · " + t.passkeyUsed(when(Date.parse(k.last_used_at))) : ""}
              </span>
            </div>
            {list.length > 1 && (
              <button class="btn btn-small btn-danger" type="button" data-remove-passkey={k.id} disabled={busy}
                onClick={() => confirm(t.confirmPasskeyRemove(k.name)) && void run(() => engine.sdk.deletePasskey(k.id), t.passkeyRemoved)}>
                {t.passkeyRemove}
              </button>
            )}
          </li>
        ))}
      </ul>
      <form class="inline-form" onSubmit={(e) => { e.preventDefault(); void run(async () => {
          try {
            await engine.sdk.addPasskey({ name: name.trim() || undefined, onApprove: () => setApproving(true) })
          } finally {
            setApproving(false)
          }
          setName("")
        }, t.passkeyAdded) }}>
        <input id="passkey-name" class="input" maxLength={64} aria-label={t.passkeyNameLabel} placeholder={t.passkeyNameLabel} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button id="passkey-add" class="btn btn-small" type="submit" disabled={busy}>{t.passkeyAdd}</button>
      </form>
      {approving && <p class="small" id="passkey-approve" role="status">{t.passkeyApprovePrompt}</p>}
      <ErrorText text={error} />
    </section>
  )
}

export function SessionsSetting() {
  const engine = useEngine()
  const [after, setAfter] = useState("")
  const [result, setResult] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  async function end() {
    setBusy(true)
    setError(null)
    setResult(null)
    try {
      const since = after ? new Date(after) : undefined
      const r = await engine.sdk.endOtherSessions({ removePasskeysAddedAfter: since && !Number.isNaN(since.getTime()) ? since : undefined })
      setResult(t.sessionsEnded(r.ended, r.passkeysRemoved))
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <section class="field" aria-labelledby="sessions-title">
      <h2 class="section-title" id="sessions-title">{t.sessionsTitle}</h2>
      <p class="muted small">{t.sessionsLead}</p>
      <label class="field">
        <span class="field-label">{t.sessionsRemoveAfter}</span>
        <input id="sessions-after" class="input" type="datetime-local" value={after} onInput={(e) => setAfter(e.currentTarget.value)} />
      </label>
      <button id="end-sessions" class="btn btn-danger" type="button" disabled={busy} onClick={() => void end()}>{t.sessionsEnd}</button>
      {result && <p class="small" id="sessions-result" role="status">{result}</p>}
      <ErrorText text={error} />
    </section>
  )
}

export function DeleteAccount() {
  const engine = useEngine()
  const [typed, setTyped] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const username = me.value?.username ?? ""
  async function remove(ev: Event) {
    ev.preventDefault()
    if (typed.trim().toLowerCase() !== username) return
    setBusy(true)
    setError(null)
    try {
      await engine.deleteAccount()
      go("/goodbye")
    } catch (e) {
      setError(plainError(e))
      setBusy(false)
    }
  }
  return (
    <form class="field danger-zone" onSubmit={remove} aria-labelledby="delete-title">
      <h2 class="section-title" id="delete-title">{t.deleteTitle}</h2>
      <p class="muted small">{t.deleteLead}</p>
      <label class="field">
        <span class="field-label">{t.deleteConfirmLabel(username)}</span>
        <input id="delete-confirm" class="input" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autocomplete="off" autocapitalize="none" spellcheck={false} />
      </label>
      <button id="delete-account" class="btn btn-danger" type="submit" disabled={busy || typed.trim().toLowerCase() !== username}>{t.deleteButton}</button>
      <ErrorText text={error} />
    </form>
  )
}
