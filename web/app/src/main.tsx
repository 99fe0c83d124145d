// Entry point: theme, service worker (app shell cache), engine, UI.
import { render } from "preact"
import { Engine } from "./core/engine"
import { App } from "./ui/App"
import { EngineContext } from "./ui/common"
import { applyTheme } from "./ui/Settings"

applyTheme()

// The page runs under Trusted Types: a script URL must come from a named
// policy, and this one allows exactly the service worker.
const SW_URL = "/app/sw.js"
function registerServiceWorker(): void {
  if (!("serviceWorker" in navigator)) return
  const tt = (window as unknown as { trustedTypes?: { createPolicy(n: string, r: { createScriptURL(u: string): string }): { createScriptURL(u: string): string } } }).trustedTypes
  const policy = tt?.createPolicy("sovereign-sw", {
    createScriptURL: (u) => {
      if (u !== SW_URL) throw new TypeError("only the app's service worker may be loaded")
      return u
    },
  })
  const url = policy ? policy.createScriptURL(SW_URL) : SW_URL
  navigator.serviceWorker.register(url as string, { scope: "/app/" }).catch(() => undefined)
}

async function start(): Promise<void> {
  registerServiceWorker()
  const root = document.getElementById("app")!
  const engine = await Engine.boot()
  render(
    <EngineContext.Provider value={engine}>
      <App />
    </EngineContext.Provider>,
    root,
  )
}

void start()
