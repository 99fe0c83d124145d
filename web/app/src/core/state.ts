// The app's reactive state (Preact signals). Core modules write it; the
// components only read it and call core functions.
import { signal, computed } from "@preact/signals"
import type { AttachmentPointer } from "@sovereign-im/client"
import { emptyTrust, type TrustState } from "./trust"

export interface Member {
  deviceId: string
  userId: string
  username: string
  /** The display name the server lists (people may change it: identify them by username). */
  displayName?: string
}

export interface Conversation {
  /** MLS group id, base64url. */
  id: string
  name?: string
  color: string
  members: Member[]
  lastTime: number
  lastText: string
  unread: number
  /** active; removed (a commit removed this device); rejoin (lost after a 410). */
  state: "active" | "removed" | "rejoin"
}

export type MessageState = "queued" | "sending" | "sent" | "failed" | "received"

export interface Message {
  /** The envelope id (the sender's UUID). */
  id: string
  conv: string
  t: number
  kind: "text" | "system" | "attachment"
  /** The text; for an attachment, its file name (or empty). */
  text: string
  /** An attachment's pointer (id, key, digest, thumbnail): set once it is uploaded. */
  attachment?: AttachmentPointer
  /** The attachment is a voice note. */
  voice?: boolean
  fromUser?: string
  fromName?: string
  /** The sender's username (fromName is their display name). */
  fromUsername?: string
  fromDevice?: string
  mine: boolean
  state: MessageState
  error?: string
}

export interface Me {
  userId: string
  username: string
  deviceId: string
  role?: string
  displayName?: string
}

export const me = signal<Me | null>(null)
export const booted = signal(false)
export const conversations = signal<Record<string, Conversation>>({})
export const messages = signal<Record<string, Message[]>>({})
export const openConversation = signal<string | null>(null)
export const network = signal<"online" | "offline" | "connecting">(typeof navigator === "undefined" || navigator.onLine ? "connecting" : "offline")
export const banner = signal<string | null>(null)
export const toast = signal<string | null>(null)
/**
 * Conversations whose history the SDK found tampered with (history_mismatch,
 * docs/verification.md), by conversation id: what was found, for the warning.
 */
export const historyWarnings = signal<Record<string, string>>({})

/** Device verification alarms (docs/verification.md): refused devices by conversation, account resets (trust.ts). */
export const trust = signal<TrustState>(emptyTrust())
/** This device was signed in before passkey bindings existed: it asks for a passkey once to bind its key. */
export const bindingNeeded = signal(false)

/** An account notice to show in a banner (a new device, a passkey added or removed) with where to review it. */
export interface AccountAlert {
  id: string
  text: string
  review: "devices" | "settings"
}
export const accountAlerts = signal<AccountAlert[]>([])

/** How a person is named in lists: display name, else username. */
export function nameOf(m: { username: string; displayName?: string }): string {
  return m.displayName?.trim() || m.username
}

export const sortedConversations = computed(() =>
  Object.values(conversations.value).sort((a, b) => b.lastTime - a.lastTime),
)

export function showToast(text: string): void {
  toast.value = text
  setTimeout(() => {
    if (toast.value === text) toast.value = null
  }, 4000)
}
