// Settings: who is signed in, appearance, push notifications for this
// device, sign out.
import { useEffect, useState } from "preact/hooks"
import { pushState, pushSupported, subscribePush, unsubscribePush, type PushState } from "@sovereign-im/client"
import { me } from "../core/state"
import { t } from "../strings"
import { TopBar, useEngine } from "./common"
import { DeleteAccount, PasskeysSetting, SessionsSetting } from "./Passkeys"
import { DisplayNameSetting } from "./People"
import { go } from "./router"

export type Theme = "system" | "light" | "dark"

export function applyTheme(theme: Theme = (localStorage.getItem("theme") as Theme) ?? "system"): void {
  if (theme === "system") delete document.documentElement.dataset.theme
  else document.documentElement.dataset.theme = theme
}

/** The per-device push setting (docs/push.md). */
function PushSetting() {
  const engine = useEngine()
  const [state, setState] = useState<PushState | undefined>()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState("")
  const registration = async () => (pushSupported() ? await navigator.serviceWorker.ready : undefined)
  const refresh = async () => setState(await pushState(engine.sdk, await registration()))
  useEffect(() => {
    void refresh().catch((e: unknown) => setError(String(e)))
  }, [])
  const toggle = async (on: boolean) => {
    setBusy(true)
    setError("")
    try {
      const reg = await registration()
      if (on && reg) await subscribePush(engine.sdk, reg)
      else await unsubscribePush(engine.sdk, reg)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    } finally {
      await refresh().catch(() => undefined)
      setBusy(false)
    }
  }
  const status = !state
    ? ""
    : !state.supported
      ? t.pushUnsupported
      : !state.serverEnabled
        ? t.pushServerOff
        : state.permission === "denied"
          ? t.pushDenied
          : state.subscribed
            ? t.pushOn
            : t.pushOff
  const usable = !!state && state.supported && state.serverEnabled && state.permission !== "denied"
  return (
    <fieldset class="field">
      <legend class="field-label">{t.pushTitle}</legend>
      <label class="radio">
        <input id="push-toggle" type="checkbox" checked={!!state?.subscribed} disabled={!usable || busy} onChange={(e) => void toggle((e.target as HTMLInputElement).checked)} />
        {t.pushToggle}
      </label>
      <p id="push-status" class="muted small">
        {status}
      </p>
      {error && <p class="error small">{error}</p>}
      <p class="muted small">{t.pushNote}</p>
    </fieldset>
  )
}

export function SettingsView() {
  const engine = useEngine()
  const [theme, setTheme] = useState<Theme>((localStorage.getItem("theme") as Theme) ?? "system")
  const choose = (v: Theme) => {
    localStorage.setItem("theme", v)
    setTheme(v)
    applyTheme(v)
  }
  return (
    <section class="pane pane-main">
      <TopBar title={t.settingsTitle} back="/" />
      <div class="pad">
        <p>{t.signedInAs(me.value?.username ?? "")}</p>
        <DisplayNameSetting />
        <fieldset class="field">
          <legend class="field-label">{t.theme}</legend>
          {(["system", "light", "dark"] as Theme[]).map((v) => (
            <label class="radio" key={v}>
              <input type="radio" name="theme" value={v} checked={theme === v} onChange={() => choose(v)} />
              {v === "system" ? t.themeSystem : v === "light" ? t.themeLight : t.themeDark}
            </label>
          ))}
        </fieldset>
        <PushSetting />
        <PasskeysSetting />
        <SessionsSetting />
        <p class="muted small">{t.storageNote}</p>
        <button id="signout" class="btn btn-danger" type="button" onClick={() => void engine.logout().then(() => go("/signin"))}>
          {t.signOut}
        </button>
        <DeleteAccount />
      </div>
    </section>
  )
}
