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

// Push notifications (issue 15) add their "push" and "notificationclick" handlers here.
