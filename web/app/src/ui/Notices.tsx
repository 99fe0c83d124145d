// Banners for account notices (a new device signed in, a passkey added or
// removed), each with a link to where it can be reviewed.
import { useState } from "preact/hooks"
import { plainError } from "../core/errors"
import { dismissAlert } from "../core/notices"
import { accountAlerts, bindingNeeded, showToast } from "../core/state"
import { t } from "../strings"
import { ErrorText, useEngine } from "./common"

export function AccountAlerts() {
  const list = accountAlerts.value
  if (list.length === 0) return null
  return (
    <div class="alerts">
      {list.map((a) => (
        <div class="banner banner-alert" role="alert" key={a.id} data-alert={a.review}>
          <span>
            {a.text}{" "}
            <a href={a.review === "devices" ? "#/devices" : "#/settings"} onClick={() => dismissAlert(a.id)}>
              {a.review === "devices" ? t.reviewDevices : t.reviewPasskeys}
            </a>
          </span>
          <button class="btn btn-small" type="button" onClick={() => dismissAlert(a.id)}>
            {t.dismiss}
          </button>
        </div>
      ))}
    </div>
  )
}

/** The once-only prompt of a device signed in before passkey bindings existed: one passkey assertion binds its key. */
export function BindPrompt() {
  const engine = useEngine()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  if (!bindingNeeded.value) return null
  const bind = async () => {
    setBusy(true)
    setError(null)
    try {
      await engine.bindDevice()
      showToast(t.bindDone)
    } catch (e) {
      setError(plainError(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <div class="banner banner-alert" role="alert" id="bind-prompt">
      <span>{t.bindPrompt}</span>
      <button class="btn btn-small" type="button" id="bind-device" disabled={busy} onClick={() => void bind()}>{t.bindButton}</button>
      <ErrorText text={error} />
    </div>
  )
}
