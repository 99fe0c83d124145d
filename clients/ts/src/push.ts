// Web Push for this device (RFC 8030/8291/8292): subscribe with the
// browser's PushManager and the server's VAPID key, and tell the server.
// A push is a content-free wake-up ({"t":"wake"}): the app's service worker
// shows "New message" and, when it can, fetches the feed and decrypts it on
// the device. See docs/push.md.
import type { SovereignClient } from "./client.js"
import { ApiError, type Problem } from "./errors.js"
import { fromBase64url } from "./bytes.js"

/** The payload every push carries (after the browser decrypts it). */
export interface PushWake {
  t: "wake"
}

/** Whether push can work here, and whether this device has it on. */
export interface PushState {
  /** The browser has service workers, PushManager and notifications. */
  supported: boolean
  /** The server sends pushes (false with --push=false). */
  serverEnabled: boolean
  /** Notification permission ("default", "granted", "denied"). */
  permission: NotificationPermission | "unsupported"
  /** This browser holds a push subscription for the app's worker. */
  subscribed: boolean
}

/** True when this environment has what Web Push needs. */
export function pushSupported(): boolean {
  return (
    typeof navigator !== "undefined" &&
    "serviceWorker" in navigator &&
    typeof PushManager !== "undefined" &&
    typeof Notification !== "undefined"
  )
}

function fail(status: number, error: unknown, operation: string): never {
  const p = (typeof error === "object" && error !== null ? error : { detail: String(error) }) as Problem
  throw new ApiError(status, p, operation)
}

/**
 * The server's VAPID public key (base64url), or undefined when the server
 * has push turned off.
 */
export async function vapidPublicKey(client: SovereignClient): Promise<string | undefined> {
  const r = await client.api.GET("/v1/push/vapid-public-key", {})
  if (r.response.status === 404) return undefined
  if (!r.data) fail(r.response.status, r.error, "getVapidPublicKey")
  return r.data.public_key
}

/**
 * Subscribes this device: asks for notification permission, subscribes the
 * service worker's PushManager with the server's key (replacing a
 * subscription made with another key) and stores it on the server.
 */
export async function subscribePush(client: SovereignClient, registration: ServiceWorkerRegistration): Promise<PushSubscription> {
  const key = await vapidPublicKey(client)
  if (!key) throw new ApiError(404, { code: "push_disabled", detail: "push notifications are turned off on this server" }, "getVapidPublicKey")
  const permission = await Notification.requestPermission()
  if (permission !== "granted") {
    throw new ApiError(403, { code: "notifications_denied", detail: "notifications are not allowed for this app" }, "requestPermission")
  }
  const applicationServerKey = fromBase64url(key)
  let sub = await registration.pushManager.getSubscription()
  if (sub && !sameKey(sub.options.applicationServerKey, applicationServerKey)) {
    await sub.unsubscribe()
    sub = null
  }
  sub ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: applicationServerKey as BufferSource })
  const json = sub.toJSON()
  const r = await client.api.PUT("/v1/me/devices/current/push", {
    body: {
      endpoint: sub.endpoint,
      expirationTime: json.expirationTime ?? null,
      keys: { p256dh: json.keys?.p256dh ?? "", auth: json.keys?.auth ?? "" },
    },
  })
  if (!r.data) fail(r.response.status, r.error, "putMyDevicePush")
  return sub
}

/** Stops push for this device: on the server, then in the browser. */
export async function unsubscribePush(client: SovereignClient, registration?: ServiceWorkerRegistration): Promise<void> {
  const r = await client.api.DELETE("/v1/me/devices/current/push", {})
  if (!r.response.ok) fail(r.response.status, r.error, "deleteMyDevicePush")
  const sub = await registration?.pushManager.getSubscription()
  await sub?.unsubscribe()
}

/** What the settings screen shows. */
export async function pushState(client: SovereignClient, registration?: ServiceWorkerRegistration): Promise<PushState> {
  const supported = pushSupported() && registration !== undefined
  const serverEnabled = (await vapidPublicKey(client)) !== undefined
  let subscribed = false
  if (supported && serverEnabled) {
    const local = await registration!.pushManager.getSubscription()
    if (local) {
      const r = await client.api.GET("/v1/me/devices/current/push", {})
      subscribed = r.response.ok && r.data?.endpoint === local.endpoint
    }
  }
  return {
    supported,
    serverEnabled,
    permission: typeof Notification === "undefined" ? "unsupported" : Notification.permission,
    subscribed,
  }
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false
  const x = new Uint8Array(a)
  return x.length === b.length && x.every((v, i) => v === b[i])
}
