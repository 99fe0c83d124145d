// Account notices from the feed, shown as banners: a new device signed in
// to my account, a passkey was added to it or removed from it. Each says
// where to review it (My devices, Settings), so that a change made behind
// my back shows on every device of mine. A change this device made itself
// is not announced to it again.
import type { ClientEvent, SignInLocation } from "@sovereign-im/client"
import { accountAlerts, me, type AccountAlert } from "./state"
import { t } from "../strings"

/** At most this many banners at once (the oldest go first). */
const MAX_ALERTS = 3

/** The banner a feed event calls for, if any. */
export function alertFor(e: ClientEvent, myDeviceId: string | undefined): AccountAlert | undefined {
  const r = e.result
  if (r.kind === "new_device") {
    if (r.deviceId === myDeviceId) return undefined
    const text = t.newDeviceBanner(r.deviceName || t.unnamedDevice, stamp(r.createdAt || e.event.serverTime), place(r.location))
    return { id: e.eventId, text, review: "devices" }
  }
  if (r.kind !== "notice") return undefined
  const n = r.notice
  if (n.type !== "passkey_added" && n.type !== "passkey_removed") return undefined
  if (typeof n.by_device_id === "string" && n.by_device_id === myDeviceId) return undefined
  const name = typeof n.name === "string" && n.name ? n.name : t.unnamedPasskey
  const when = stamp(e.event.serverTime)
  const text = n.type === "passkey_added" ? t.passkeyAddedBanner(name, when) : t.passkeyRemovedBanner(name, when, String(n.reason ?? ""))
  return { id: e.eventId, text, review: "settings" }
}

/** The feed listener: queues the banner an event calls for. */
export function onAccountNotice(e: ClientEvent): void {
  const a = alertFor(e, me.value?.deviceId)
  if (!a || accountAlerts.value.some((x) => x.id === a.id)) return
  accountAlerts.value = [...accountAlerts.value, a].slice(-MAX_ALERTS)
}

export function dismissAlert(id: string): void {
  accountAlerts.value = accountAlerts.value.filter((a) => a.id !== id)
}

/** "Berlin, Germany" from {country: "DE", city: "Berlin"}: the server's
 * coarse location of a sign-in (only with --geoip-db), the country named in
 * English like the rest of the app's strings. */
export function place(loc: SignInLocation | undefined): string {
  if (!loc?.country) return ""
  let country = loc.country
  try {
    country = new Intl.DisplayNames(["en"], { type: "region" }).of(loc.country) ?? loc.country
  } catch {
    // an unknown code stays as it is
  }
  return loc.city ? `${loc.city}, ${country}` : country
}

function stamp(iso: string): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ""
  return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
}
