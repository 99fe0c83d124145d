// One conversation: its messages with their states, the composer, and
// the members panel (add, remove, rename).
import { useEffect, useRef, useState } from "preact/hooks"
import { plainError } from "../core/errors"
import { UserFacingError } from "../core/conversations"
import { fromBase64url, type DeviceCheck } from "@sovereign-im/client"
import { conversations, historyWarnings, me, messages, nameOf, openConversation, showToast, trust, type Message } from "../core/state"
import { warningsFor } from "../core/trust"
import { t } from "../strings"
import { ErrorText, TopBar, useEngine, when } from "./common"
import { titleOf } from "./Chats"
import { AttachControls, AttachmentBody, useDropAndPaste } from "./Attachment"
import { go } from "./router"
import { SafetyPanel } from "./SafetyCode"

const STATE_TEXT: Record<string, string> = { queued: t.msgQueued, sending: t.msgSending, sent: t.msgSent, failed: t.msgFailed }

/** The body of a message; attachments (photos, files, voice notes) have their own component. */
function MessageBody({ m }: { m: Message }) {
  if (m.kind === "attachment") return <AttachmentBody m={m} />
  return <p class="msg-text">{m.text}</p>
}

function MessageRow({ m }: { m: Message }) {
  const engine = useEngine()
  if (m.kind === "system") return <li class="msg-system">{m.text}</li>
  return (
    <li class={"msg" + (m.mine ? " mine" : "")} data-state={m.state} data-id={m.id}>
      {!m.mine && <span class="msg-from" title={m.fromUsername && "@" + m.fromUsername}>{m.fromName}</span>}
      <MessageBody m={m} />
      <span class="msg-meta">
        <time>{when(m.t)}</time>
        {m.mine && <span class={"msg-state " + m.state}>{STATE_TEXT[m.state]}</span>}
        {m.state === "failed" && !(m.kind === "attachment" && !m.attachment && !engine.attachments.isPending(m.id)) && (
          <button class="link" type="button" onClick={() => void (engine.attachments.canRetryUpload(m) ? engine.attachments.retry(m) : engine.outbox.retry(m))} title={m.error}>
            {t.msgRetry}
          </button>
        )}
      </span>
    </li>
  )
}

function Members({ id }: { id: string }) {
  const engine = useEngine()
  const c = conversations.value[id]!
  const [add, setAdd] = useState("")
  const [name, setName] = useState(c.name ?? "")
  const [error, setError] = useState<string | null>(null)
  const users = [...new Map(c.members.map((m) => [m.username, m])).values()]
  const [checks, setChecks] = useState<Map<string, DeviceCheck> | null>(null)
  const recheck = () => {
    if (c.state !== "active") return
    engine.sdk.verifyGroupDevices(fromBase64url(id)).then(setChecks, () => setChecks(null))
  }
  useEffect(recheck, [id, c.members.length])
  const run = async (f: () => Promise<void>) => {
    setError(null)
    try {
      await f()
    } catch (e) {
      setError(e instanceof UserFacingError ? e.message : plainError(e))
    }
  }
  return (
    <aside class="members" aria-label={t.members}>
      <h2>{t.members}</h2>
      <ul>
        {users.map((m) => (
          <li key={m.username}>
            <span class="member-name">
              {nameOf(m)}
              {m.username === me.value?.username && ` (${t.you})`} <span class="muted small">@{m.username}</span>
            </span>
            {m.username !== me.value?.username && c.state === "active" && (
              <button class="btn btn-small btn-danger" type="button" data-remove={m.username}
                onClick={() => confirm(t.confirmRemove(m.username)) && void run(() => engine.convs.removePerson(id, m.username))}>
                {t.removePerson}
              </button>
            )}
            <ul class="member-devices">
              {c.members.filter((d) => d.username === m.username).map((d) => {
                const r = checks?.get(d.deviceId)
                return (
                  <li key={d.deviceId} class="small" data-member-device={d.deviceId} data-verified={r ? String(r.ok) : "unknown"}>
                    <code title={d.deviceId}>…{d.deviceId.slice(-6)}</code>{" "}
                    {r?.ok && <span class="tag" title={t.deviceVerifiedTitle}>✓ {t.deviceVerified}</span>}
                    {r && !r.ok && <span class="tag tag-danger" title={t.deviceUnverifiedTitle} data-reason={r.reason}>⚠ {t.deviceUnverified}</span>}
                    {r && !r.ok && c.state === "active" && d.deviceId !== me.value?.deviceId && (
                      <button class="btn btn-small btn-danger" type="button" data-remove-device={d.deviceId}
                        onClick={() => void run(async () => { await engine.sdk.removeDevices(fromBase64url(id), [d.deviceId]); recheck() })}>
                        {t.removeDevice}
                      </button>
                    )}
                  </li>
                )
              })}
            </ul>
          </li>
        ))}
      </ul>
      {c.state === "active" && (
        <>
          <form class="inline-form" onSubmit={(e) => { e.preventDefault(); void run(async () => { await engine.convs.addPeople(id, add.split(/[\s,]+/)); setAdd("") }) }}>
            <input class="input" id="add-people" placeholder={t.addPeople} aria-label={t.addPeople} value={add} onInput={(e) => setAdd(e.currentTarget.value)} autocapitalize="none" />
            <button class="btn btn-small" type="submit">{t.addButton}</button>
          </form>
          <form class="inline-form" onSubmit={(e) => { e.preventDefault(); void run(() => engine.convs.rename(id, name)) }}>
            <input class="input" id="rename" aria-label={t.renameLabel} placeholder={t.renameLabel} value={name} onInput={(e) => setName(e.currentTarget.value)} />
            <button class="btn btn-small" type="submit">{t.rename}</button>
          </form>
        </>
      )}
      <button class="btn btn-small btn-danger" type="button" id="leave-chat"
        onClick={() => confirm(t.confirmLeave) && void run(async () => { await engine.convs.leave(id); showToast(t.leftChat); go("/") })}>
        {t.leaveChat}
      </button>
      <ErrorText text={error} />
    </aside>
  )
}

export function Chat({ id }: { id: string }) {
  const engine = useEngine()
  const c = conversations.value[id]
  const list = messages.value[id]
  const [text, setText] = useState("")
  const [showMembers, setShowMembers] = useState(false)
  const [showSafety, setShowSafety] = useState(false)
  const end = useRef<HTMLLIElement>(null)
  const drop = useDropAndPaste(id)

  useEffect(() => {
    openConversation.value = id
    void engine.convs.loadMessages(id)
    return () => {
      if (openConversation.value === id) openConversation.value = null
    }
  }, [id])
  useEffect(() => {
    if (c?.unread) void engine.convs.markRead(id)
  }, [id, c?.unread])
  useEffect(() => end.current?.scrollIntoView({ block: "end" }), [list?.length])

  if (!c) return <section class="pane pane-main"><TopBar title={t.unnamedPending} back="/" /></section>

  const send = (ev: Event) => {
    ev.preventDefault()
    const body = text.trim()
    if (!body) return
    setText("")
    void engine.outbox.sendText(id, body)
  }

  return (
    <section class={"pane pane-main chat" + (drop.over ? " drop-over" : "")} {...(c.state === "active" ? drop.handlers : {})}>
      <TopBar title={titleOf(c)} back="/">
        <button class="btn btn-small" type="button" id="members-toggle" aria-expanded={showMembers} onClick={() => setShowMembers(!showMembers)}>
          {t.members}
        </button>
        <button class="btn btn-small" type="button" id="safety-toggle" aria-expanded={showSafety} onClick={() => setShowSafety(!showSafety)}>
          {t.safetyToggle}
        </button>
      </TopBar>
      {c.state === "removed" && <p class="chat-note">{t.removedFromChat}</p>}
      {c.state === "rejoin" && <p class="chat-note">{t.rejoinNeeded}</p>}
      {historyWarnings.value[id] && (
        <div class="banner banner-alert" role="alert" id="history-warning" data-reason={historyWarnings.value[id]}>
          <span>{t.historyMismatch}</span>
        </div>
      )}
      {warningsFor(trust.value, id, c.members).map((w) => (
        <div class="banner banner-alert" role="alert" key={w.kind + w.username + ("deviceId" in w ? w.deviceId : "")} data-trust={w.kind}>
          <span>
            {w.kind === "unverified_device" ? t.unverifiedDeviceWarning(w.username)
              : w.kind === "account_reset" ? t.accountResetWarning(w.username)
              : t.passkeyUnapprovedWarning(w.username)}
          </span>
        </div>
      ))}
      <div class="chat-body">
        <ol class="messages" id="messages" aria-live="polite">
          {list && list.length === 0 && <li class="msg-system">{t.noMessages}</li>}
          {list?.map((m) => <MessageRow key={m.id} m={m} />)}
          <li ref={end} class="end" aria-hidden="true" />
        </ol>
        {showMembers && <Members id={id} />}
        {showSafety && <SafetyPanel id={id} />}
      </div>
      {c.state === "active" && (
        <form class="composer" onSubmit={send}>
          <AttachControls conv={id} />
          <textarea id="composer" class="input" rows={1} placeholder={t.composePlaceholder} aria-label={t.composePlaceholder} value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            onKeyDown={(e) => { if (e.key === "Enter" && !e.shiftKey) send(e) }} />
          <button id="send" class="btn btn-primary" type="submit">{t.send}</button>
        </form>
      )}
    </section>
  )
}
