// Joining with an invite and signing in with a passkey.
import { useEffect, useState } from "preact/hooks"
import { browserSupportsWebAuthnAutofill } from "@simplewebauthn/browser"
import { plainError } from "../core/errors"
import { showToast } from "../core/state"
import { t } from "../strings"
import { ErrorText, useEngine } from "./common"
import { go } from "./router"

export function Splash({ title, lead, children }: { title: string; lead: string; children: preact.ComponentChildren }) {
  return (
    <main class="splash">
      <div class="splash-card">
        <img class="splash-logo" src="/app/assets/icon.svg" alt="" width="56" height="56" />
        <h1>{title}</h1>
        <p class="muted">{lead}</p>
        {children}
      </div>
    </main>
  )
}

export function Join({ code }: { code: string }) {
  const engine = useEngine()
  const [invite, setInvite] = useState(code)
  const [username, setUsername] = useState("")
  const [display, setDisplay] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => setInvite(code), [code])

  async function submit(ev: Event) {
    ev.preventDefault()
    const form = ev.currentTarget as HTMLFormElement
    if (!form.reportValidity()) return
    setBusy(true)
    setError(null)
    try {
      const role = await engine.register({ invite: invite.trim(), username, displayName: display })
      history.replaceState(null, "", "#/")
      if (role === "admin") showToast(t.adminRegistered(username))
      go("/")
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Splash title={t.registerTitle} lead={t.registerLead}>
      <form class="form" onSubmit={submit} noValidate>
        <label class="field">
          <span class="field-label">{t.inviteLabel}</span>
          <input id="invite" class="input mono" value={invite} onInput={(e) => setInvite(e.currentTarget.value)} autocomplete="off" spellcheck={false} />
        </label>
        <label class="field">
          <span class="field-label">{t.usernameLabel}</span>
          <input id="username" class="input" required minLength={3} maxLength={32} pattern="[a-zA-Z0-9._\-]{3,32}" value={username}
            onInput={(e) => setUsername(e.currentTarget.value)} autocomplete="username" autocapitalize="none" spellcheck={false} />
          <span class="hint">{t.usernameHint}</span>
        </label>
        <label class="field">
          <span class="field-label">{t.displayNameLabel}</span>
          <input id="display_name" class="input" required maxLength={64} value={display} onInput={(e) => setDisplay(e.currentTarget.value)} autocomplete="name" />
          <span class="hint">{t.displayNameHint}</span>
        </label>
        <button class="btn btn-primary btn-block" type="submit" disabled={busy}>
          {t.registerButton}
        </button>
        <ErrorText text={error} />
      </form>
      <p class="splash-foot">
        {t.haveAccount}
        <a href="#/signin">{t.openSignIn}</a>
      </p>
    </Splash>
  )
}

export function SignIn() {
  const engine = useEngine()
  const [username, setUsername] = useState("")
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  // Conditional UI: where the browser offers passkeys in the username
  // field's autofill, wait for that choice in the background. The server
  // forgets a ceremony after 60 s, so the request is renewed every 50 s.
  useEffect(() => {
    let live = true
    let renewing = false
    let timer: ReturnType<typeof setTimeout> | undefined
    void (async () => {
      if (!(await browserSupportsWebAuthnAutofill())) return
      while (live) {
        renewing = false
        timer = setTimeout(() => {
          renewing = true
          engine.passkeys.cancel()
        }, 50_000)
        try {
          await engine.login({ autofill: true })
          if (live) go("/")
          return
        } catch (e) {
          const code = (e as { code?: string })?.code ?? (e as { name?: string })?.name
          const aborted = code === "ERROR_CEREMONY_ABORTED" || code === "AbortError"
          if (!live || (aborted && !renewing)) return // left the page, or a modal sign-in took over
          if (!aborted) {
            setError(plainError(e))
            await new Promise((r) => setTimeout(r, 5000))
          }
        } finally {
          clearTimeout(timer)
        }
      }
    })()
    return () => {
      live = false
      clearTimeout(timer)
      engine.passkeys.cancel()
    }
  }, [])

  async function signIn() {
    setBusy(true)
    setError(null)
    try {
      await engine.login({ username: username.trim().toLowerCase() || undefined })
      go("/")
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }

  return (
    <Splash title={t.signInTitle} lead={t.signInLead}>
      <form class="form" onSubmit={(e) => { e.preventDefault(); void signIn() }}>
        <label class="field">
          <span class="field-label">{t.signInUsernameLabel}</span>
          <input id="signin-username" class="input" value={username} onInput={(e) => setUsername(e.currentTarget.value)}
            autocomplete="username webauthn" autocapitalize="none" spellcheck={false} />
        </label>
        <button id="signin" class="btn btn-primary btn-block" type="submit" disabled={busy}>
          {t.signInButton}
        </button>
        <ErrorText text={error} />
      </form>
      <p class="splash-foot">
        {t.haveInvite}
        <a href="#/join">{t.openRegister}</a>
      </p>
    </Splash>
  )
}
