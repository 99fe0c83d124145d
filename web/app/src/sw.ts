// The service worker: keeps the app shell (page, script, styles, icons,
// manifest) in a cache so the app opens without a network. Network first,
// so a new version of the binary is picked up at once; the cache answers
// only when the network does not. API calls (/v1/) are never touched.
/// <reference lib="webworker" />
export {}
const sw = self as unknown as ServiceWorkerGlobalScope
declare const SHELL_VERSION: string

const CACHE = "sovereign-shell-" + SHELL_VERSION
const SHELL = ["/app/", "/app/assets/app.js", "/app/assets/app.css", "/app/assets/icon.svg", "/app/assets/icon-192.png", "/app/assets/icon-512.png", "/app/manifest.webmanifest"]

sw.addEventListener("install", (e) => {
  e.waitUntil(
    (async () => {
      const c = await caches.open(CACHE)
      await c.addAll(SHELL)
      await sw.skipWaiting()
    })(),
  )
})

sw.addEventListener("activate", (e) => {
  e.waitUntil(
    (async () => {
      for (const k of await caches.keys()) if (k.startsWith("sovereign-shell-") && k !== CACHE) await caches.delete(k)
      await sw.clients.claim()
    })(),
  )
})

sw.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url)
  if (e.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/app")) return
  const key = url.pathname === "/app" || url.pathname === "/app/" || url.pathname === "/app/index.html" ? "/app/" : url.pathname
  if (!SHELL.includes(key)) return
  e.respondWith(
    (async () => {
      try {
        const res = await fetch(e.request)
        if (res.ok) {
          const c = await caches.open(CACHE)
          await c.put(key, res.clone())
        }
        return res
      } catch (err) {
        const hit = await caches.match(key)
        if (hit) return hit
        throw err
      }
    })(),
  )
})

// Push notifications (docs/push.md). A push is a content-free wake-up
// ({"t":"wake"}): the notification text never comes from the server. The
// worker shows "New message"; when a page of the app is running, that page
// (which holds the MLS state) catches up, decrypts and says who wrote, and
// the notification names them. The worker itself never decrypts.
const NOTIFY_TAG = "sovereign-new-message"

async function askPage(): Promise<{ from?: string; visible?: boolean } | undefined> {
  const wins = await sw.clients.matchAll({ type: "window", includeUncontrolled: true })
  for (const w of wins) {
    const reply = await new Promise<{ from?: string; visible?: boolean } | undefined>((resolve) => {
      const ch = new MessageChannel()
      const timer = setTimeout(() => resolve(undefined), 3000)
      ch.port1.onmessage = (m) => {
        clearTimeout(timer)
        resolve(m.data as { from?: string; visible?: boolean })
      }
      w.postMessage({ type: "push-wake" }, [ch.port2])
    })
    if (reply) return reply
  }
  return undefined
}

sw.addEventListener("push", (e) => {
  e.waitUntil(
    (async () => {
      const reply = await askPage().catch(() => undefined)
      const title = reply?.from ? `New message from ${reply.from}` : "New message"
      await sw.registration.showNotification(title, {
        tag: NOTIFY_TAG,
        icon: "/app/assets/icon-192.png",
        badge: "/app/assets/icon-192.png",
        data: { url: "/app/" },
      })
    })(),
  )
})

sw.addEventListener("notificationclick", (e) => {
  e.notification.close()
  e.waitUntil(
    (async () => {
      const wins = await sw.clients.matchAll({ type: "window", includeUncontrolled: true })
      for (const w of wins) {
        if (new URL(w.url).pathname.startsWith("/app")) return void (await w.focus())
      }
      await sw.clients.openWindow("/app/")
    })(),
  )
})
