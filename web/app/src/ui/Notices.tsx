// Banners for account notices (a new device signed in, a passkey added or
// removed), each with a link to where it can be reviewed.
import { dismissAlert } from "../core/notices"
import { accountAlerts } from "../core/state"
import { t } from "../strings"

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
