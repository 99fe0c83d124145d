// Finding a person through the server's directory (exact username; a
// prefix list when the admin allows searching) and starting a
// conversation with them; editing my own display name.
import { useEffect, useState } from "preact/hooks"
import { UserFacingError } from "../core/conversations"
import { plainError } from "../core/errors"
import { normalUsername, type Person } from "../core/people"
import { me, showToast } from "../core/state"
import { t } from "../strings"
import { ErrorText, useEngine } from "./common"
import { go } from "./router"

const USERNAME = /^[a-z0-9._-]{3,32}$/

function PersonCard({ p, onStart, busy }: { p: Person; onStart: () => void; busy: boolean }) {
  return (
    <div class="person" id="person" data-username={p.username}>
      <div class="person-main">
        <strong class="person-name">{p.displayName}</strong>
        <span class="muted small person-username">@{p.username}</span>
        {p.devices !== undefined && <span class="muted small person-devices">{p.devices ? t.findDevices(p.devices) : t.findNoDevices}</span>}
      </div>
      {p.username !== me.value?.username && (
        <button id="start-with" class="btn btn-primary btn-small" type="button" disabled={busy || p.devices === 0} onClick={onStart}>
          {t.startWith(p.displayName)}
        </button>
      )}
    </div>
  )
}

/** Find a person by username, then start a conversation with them. */
export function FindPerson() {
  const engine = useEngine()
  const [query, setQuery] = useState("")
  const [found, setFound] = useState<Person | null>(null)
  const [matches, setMatches] = useState<Person[]>([])
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  // The prefix list, when the server allows it (one request per pause in typing).
  useEffect(() => {
    const q = normalUsername(query)
    if (q.length < 2 || !engine.people.searchAllowed) {
      setMatches([])
      return
    }
    const timer = setTimeout(() => {
      engine.people.search(q).then((list) => setMatches((list ?? []).filter((p) => p.username !== me.value?.username)), () => setMatches([]))
    }, 250)
    return () => clearTimeout(timer)
  }, [query])

  async function find(username: string) {
    const u = normalUsername(username)
    setError(null)
    setFound(null)
    if (!USERNAME.test(u)) return setError(t.findTooShort)
    setBusy(true)
    try {
      const p = await engine.people.find(u)
      if (p) {
        setFound(p)
        setMatches([])
      } else setError(t.findNoOne(u))
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }

  async function start(p: Person) {
    setBusy(true)
    setError(null)
    try {
      go("/c/" + (await engine.convs.create([p.username])))
    } catch (e) {
      setError(e instanceof UserFacingError ? e.message : plainError(e))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div class="find">
      <h2 class="section-title">{t.findTitle}</h2>
      <form class="inline-form" role="search" onSubmit={(e) => { e.preventDefault(); void find(query) }}>
        <input id="find-username" class="input" type="search" aria-label={t.findLabel} placeholder={t.findLabel} value={query}
          onInput={(e) => setQuery(e.currentTarget.value)} autocapitalize="none" autocomplete="off" spellcheck={false} />
        <button id="find" class="btn btn-small" type="submit" disabled={busy}>{t.findButton}</button>
      </form>
      <span class="hint">{t.findHint}</span>
      {matches.length > 0 && !found && (
        <ul class="matches" id="matches" aria-label={t.findMatches}>
          {matches.map((p) => (
            <li key={p.id}>
              <button class="match" type="button" data-username={p.username} onClick={() => { setQuery(p.username); void find(p.username) }}>
                <strong>{p.displayName}</strong> <span class="muted small">@{p.username}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {found && <PersonCard p={found} busy={busy} onStart={() => void start(found)} />}
      <ErrorText text={error} />
    </div>
  )
}

/** My display name (Settings). */
export function DisplayNameSetting() {
  const engine = useEngine()
  const [name, setName] = useState(me.value?.displayName ?? "")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => {
    if (!name && me.value?.displayName) setName(me.value.displayName)
  }, [me.value?.displayName])
  async function save(ev: Event) {
    ev.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await engine.people.setDisplayName(name)
      showToast(t.displayNameSaved)
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <form class="field" onSubmit={save}>
      <span class="field-label">{t.displayNameTitle}</span>
      <div class="inline-form">
        <input id="my-display-name" class="input" required maxLength={64} value={name} aria-label={t.displayNameTitle}
          onInput={(e) => setName(e.currentTarget.value)} autocomplete="name" />
        <button id="save-display-name" class="btn btn-small" type="submit" disabled={busy || !name.trim()}>{t.save}</button>
      </div>
      <span class="hint">{t.displayNameHint}</span>
      <ErrorText text={error} />
    </form>
  )
}
