// Hash routes: the app is one page at /app/; views are fragments such as
// #/c/<conversation id>. An invite link arrives as /app/#<code>.
import { signal } from "@preact/signals"

export const route = signal(location.hash)
window.addEventListener("hashchange", () => (route.value = location.hash))

export function go(path: string): void {
  if (location.hash === "#" + path) route.value = location.hash
  else location.hash = "#" + path
}

export type View =
  | { v: "join"; code: string }
  | { v: "signin" }
  | { v: "chats" }
  | { v: "chat"; id: string }
  | { v: "new" }
  | { v: "devices" }
  | { v: "settings" }

export function parse(hash: string): View {
  const raw = hash.replace(/^#/, "")
  if (raw && !raw.startsWith("/")) return { v: "join", code: decodeURIComponent(raw) }
  const [path = "/", query = ""] = raw.split("?")
  if (path === "/join") return { v: "join", code: new URLSearchParams(query).get("code") ?? "" }
  if (path === "/signin") return { v: "signin" }
  if (path === "/new") return { v: "new" }
  if (path === "/devices") return { v: "devices" }
  if (path === "/settings") return { v: "settings" }
  const m = /^\/c\/([A-Za-z0-9_-]+)$/.exec(path)
  if (m) return { v: "chat", id: m[1]! }
  return { v: "chats" }
}
