// The conversation list and the form that starts a conversation.
import { useState } from "preact/hooks"
import { plainError } from "../core/errors"
import { UserFacingError } from "../core/conversations"
import { me, nameOf, sortedConversations, type Conversation } from "../core/state"
import { t } from "../strings"
import { Avatar, ErrorText, TopBar, useEngine, when } from "./common"
import { FindPerson } from "./People"
import { go } from "./router"

/** What a conversation is called: its name (from inside MLS), else the other members' display names. */
export function titleOf(c: Conversation): string {
  if (c.name) return c.name
  const mine = me.value?.username
  const people = new Map(c.members.filter((m) => m.username !== mine).map((m) => [m.username, nameOf(m)]))
  return c.members.length ? t.unnamedWith([...people.values()]) : t.unnamedPending
}

export function ChatList({ current }: { current?: string }) {
  const list = sortedConversations.value
  return (
    <section class="pane pane-list" aria-label={t.chatsTitle}>
      <TopBar title={t.chatsTitle}>
        <a class="btn btn-small btn-primary" href="#/new" id="new-chat">
          {t.newChat}
        </a>
      </TopBar>
      {list.length === 0 ? (
        <p class="empty">{t.noChats}</p>
      ) : (
        <ul class="chat-list" id="chat-list">
          {list.map((c) => (
            <li key={c.id}>
              <a class={"chat-item" + (c.id === current ? " current" : "")} href={"#/c/" + c.id} data-chat={titleOf(c)}>
                <Avatar name={titleOf(c)} color={c.color} />
                <span class="chat-main">
                  <span class="chat-title">{titleOf(c)}</span>
                  <span class="chat-last">{c.lastText}</span>
                </span>
                <span class="chat-side">
                  <span class="chat-time">{when(c.lastTime)}</span>
                  {c.unread > 0 && (
                    <span class="badge" aria-label={t.unread(c.unread)}>
                      {c.unread}
                    </span>
                  )}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}

export function NewChat() {
  const engine = useEngine()
  const [people, setPeople] = useState("")
  const [name, setName] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function submit(ev: Event) {
    ev.preventDefault()
    const names = people.split(/[\s,]+/).filter(Boolean)
    if (names.length === 0) return
    setBusy(true)
    setError(null)
    try {
      const id = await engine.convs.create(names, name)
      go("/c/" + id)
    } catch (e) {
      setError(e instanceof UserFacingError ? e.message : plainError(e))
    } finally {
      setBusy(false)
    }
  }

  return (
    <section class="pane pane-main">
      <TopBar title={t.newChatTitle} back="/" />
      <div class="pad">
        <FindPerson />
      </div>
      <form class="form pad" onSubmit={submit}>
        <h2 class="section-title">{t.groupTitle}</h2>
        <label class="field">
          <span class="field-label">{t.newChatPeople}</span>
          <input id="new-people" class="input" required value={people} onInput={(e) => setPeople(e.currentTarget.value)} autocapitalize="none" spellcheck={false} />
          <span class="hint">{t.newChatPeopleHint}</span>
        </label>
        <label class="field">
          <span class="field-label">{t.newChatName}</span>
          <input id="new-name" class="input" maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <span class="hint">{t.newChatNameHint}</span>
        </label>
        <button id="new-start" class="btn btn-primary btn-block" type="submit" disabled={busy}>
          {busy ? t.creatingChat : t.newChatCreate}
        </button>
        <ErrorText text={error} />
      </form>
    </section>
  )
}
