// My devices: names, when they were added and last seen, the MLS key
// fingerprint each has in my conversations, and revocation.
import { useEffect, useState } from "preact/hooks"
import type { MyDevice } from "../core/devices"
import { plainError } from "../core/errors"
import { t } from "../strings"
import { ErrorText, TopBar, useEngine, when } from "./common"

export function DevicesView() {
  const engine = useEngine()
  const [list, setList] = useState<MyDevice[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const load = () => engine.devices.list().then(setList, (e) => setError(plainError(e)))
  useEffect(() => void load(), [])

  return (
    <section class="pane pane-main">
      <TopBar title={t.devicesTitle} back="/" />
      <div class="pad">
        <p class="muted">{t.devicesLead}</p>
        <ErrorText text={error} />
        <ul class="devices" id="devices">
          {list?.map((d) => (
            <li key={d.id} class={"device" + (d.revokedAt ? " revoked" : "")} data-device={d.id}>
              <div class="device-main">
                <strong>{d.name}</strong>
                {d.current && <span class="tag">{t.thisDevice}</span>}
                {d.revokedAt && <span class="tag tag-danger">{t.revoked}</span>}
                <span class="muted small">
                  {t.added(when(Date.parse(d.createdAt)))}
                  {d.lastSeenAt ? " · " + t.lastSeen(when(Date.parse(d.lastSeenAt))) : ""}
                </span>
                <span class={"small" + (d.approvedBy ? "" : " text-danger")} data-approved={d.approvedBy ? "true" : "false"}>
                  {d.approvedBy ? t.deviceApprovedBy(d.approvedBy) : t.deviceNotApproved}
                </span>
                <span class="small">
                  {t.fingerprint}: <code class="fingerprint">{d.fingerprint ?? t.fingerprintUnknown}</code>
                </span>
              </div>
              {!d.revokedAt && !d.current && (
                <button class="btn btn-small btn-danger" type="button"
                  onClick={() => confirm(t.confirmRevoke(d.name)) && engine.devices.revoke(d.id).then(load, (e) => setError(plainError(e)))}>
                  {t.revoke}
                </button>
              )}
            </li>
          ))}
        </ul>
      </div>
    </section>
  )
}
