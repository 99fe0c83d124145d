// Account recovery with an admin's recovery link (#/recover?code=…): this
// browser creates a new passkey, the server ends every old passkey and
// session, and the person lands signed in as a new device (which then
// joins their conversations by itself). And the page after deleting an
// account.
import { useEffect, useState } from "preact/hooks"
import { plainError } from "../core/errors"
import { me, showToast } from "../core/state"
import { t } from "../strings"
import { Splash } from "./Auth"
import { ErrorText, useEngine } from "./common"
import { go } from "./router"

export function Recover({ code }: { code: string }) {
  const engine = useEngine()
  const [value, setValue] = useState(code)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => setValue(code), [code])
  async function submit(ev: Event) {
    ev.preventDefault()
    if (!value.trim()) return
    setBusy(true)
    setError(null)
    try {
      await engine.recover(value)
      history.replaceState(null, "", "#/")
      showToast(t.recoverDone)
      go("/")
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Splash title={t.recoverTitle} lead={t.recoverLead}>
      <form class="form" onSubmit={submit}>
        <label class="field">
          <span class="field-label">{t.recoverCodeLabel}</span>
          <input id="recovery-code" class="input mono" required value={value} onInput={(e) => setValue(e.currentTarget.value)} autocomplete="off" spellcheck={false} />
        </label>
        {me.value && <p class="hint" id="recover-signed-in">{t.recoverSignedIn(me.value.username)}</p>}
        <button id="recover" class="btn btn-primary btn-block" type="submit" disabled={busy}>{t.recoverButton}</button>
        <ErrorText text={error} />
      </form>
    </Splash>
  )
}

export function Goodbye() {
  return (
    <Splash title={t.goodbyeTitle} lead={t.goodbyeLead}>
      <p class="splash-foot" id="goodbye">
        <a href="#/signin">{t.goodbyeBack}</a>
      </p>
    </Splash>
  )
}
