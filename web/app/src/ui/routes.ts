// The app's hash routes as data (pure: no browser globals, so unit tests
// can import it). router.ts follows location.hash.
export type View =
  | { v: "join"; code: string }
  | { v: "signin" }
  | { v: "chats" }
  | { v: "chat"; id: string }
  | { v: "new" }
  | { v: "devices" }
  | { v: "settings" }
  | { v: "recover"; code: string }
  | { v: "goodbye" }

export function parse(hash: string): View {
  const raw = hash.replace(/^#/, "")
  if (raw && !raw.startsWith("/")) return { v: "join", code: decodeURIComponent(raw) }
  // A recovery link: #/recover?code=<code> (what the server makes) or #/recover#<code>.
  const rec = /^\/recover(?:\?code=|#)?(.*)$/.exec(raw)
  if (rec) return { v: "recover", code: decodeURIComponent(rec[1] ?? "") }
  const [path = "/", query = ""] = raw.split("?")
  if (path === "/join") return { v: "join", code: new URLSearchParams(query).get("code") ?? "" }
  if (path === "/signin") return { v: "signin" }
  if (path === "/new") return { v: "new" }
  if (path === "/devices") return { v: "devices" }
  if (path === "/settings") return { v: "settings" }
  if (path === "/goodbye") return { v: "goodbye" }
  const m = /^\/c\/([A-Za-z0-9_-]+)$/.exec(path)
  if (m) return { v: "chat", id: m[1]! }
  return { v: "chats" }
}
