// Hash routes: the app is one page at /app/; views are fragments such as
// #/c/<conversation id>. An invite link arrives as /app/#<code>, a
// recovery link as /app/#/recover?code=<code>.
import { signal } from "@preact/signals"

export { parse, type View } from "./routes"

export const route = signal(location.hash)
window.addEventListener("hashchange", () => (route.value = location.hash))

export function go(path: string): void {
  if (location.hash === "#" + path) route.value = location.hash
  else location.hash = "#" + path
}
