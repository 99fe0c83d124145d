// Settings: who is signed in, appearance, sign out. Other features (push
// notifications) add their own section here.
import { useState } from "preact/hooks"
import { me } from "../core/state"
import { t } from "../strings"
import { TopBar, useEngine } from "./common"
import { go } from "./router"

export type Theme = "system" | "light" | "dark"

export function applyTheme(theme: Theme = (localStorage.getItem("theme") as Theme) ?? "system"): void {
  if (theme === "system") delete document.documentElement.dataset.theme
  else document.documentElement.dataset.theme = theme
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
        <fieldset class="field">
          <legend class="field-label">{t.theme}</legend>
          {(["system", "light", "dark"] as Theme[]).map((v) => (
            <label class="radio" key={v}>
              <input type="radio" name="theme" value={v} checked={theme === v} onChange={() => choose(v)} />
              {v === "system" ? t.themeSystem : v === "light" ? t.themeLight : t.themeDark}
            </label>
          ))}
        </fieldset>
        <p class="muted small">{t.storageNote}</p>
        <button id="signout" class="btn btn-danger" type="button" onClick={() => void engine.logout().then(() => go("/signin"))}>
          {t.signOut}
        </button>
      </div>
    </section>
  )
}
