// Small shared pieces: the engine context, avatars, the top bar, banners.
import { createContext, type ComponentChildren } from "preact"
import { useContext } from "preact/hooks"
import type { Engine } from "../core/engine"
import { banner, network, toast } from "../core/state"
import { t } from "../strings"

export const EngineContext = createContext<Engine | null>(null)
export function useEngine(): Engine {
  return useContext(EngineContext)!
}

export function Avatar({ name, color }: { name: string; color: string }) {
  const letter = (name.trim()[0] ?? "?").toUpperCase()
  return (
    <span class="avatar" style={{ backgroundColor: color }} aria-hidden="true">
      {letter}
    </span>
  )
}

export function TopBar({ title, back, children }: { title: string; back?: string; children?: ComponentChildren }) {
  return (
    <header class="topbar">
      {back !== undefined && (
        <a class="icon-btn" href={"#" + back} aria-label={t.back}>
          ‹
        </a>
      )}
      <h1 class="topbar-title">{title}</h1>
      <div class="topbar-actions">{children}</div>
    </header>
  )
}

export function NetworkStatus() {
  const n = network.value
  if (n === "online") return null
  return (
    <div class={"netstatus " + n} role="status">
      {n === "offline" ? t.offline : t.connecting}
    </div>
  )
}

export function Banner() {
  if (!banner.value) return null
  return (
    <div class="banner" role="alert">
      <span>{banner.value}</span>
      <button class="btn btn-small" type="button" onClick={() => (banner.value = null)}>
        {t.dismiss}
      </button>
    </div>
  )
}

export function Toast() {
  if (!toast.value) return null
  return (
    <div class="toast" role="status">
      {toast.value}
    </div>
  )
}

export function ErrorText({ text }: { text: string | null }) {
  if (!text) return null
  return (
    <p class="error" role="alert">
      {text}
    </p>
  )
}

/** Relative, locale-formatted time for lists. */
export function when(ms: number): string {
  const d = new Date(ms)
  const now = new Date()
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
  return d.toLocaleDateString([], { month: "short", day: "numeric" })
}
