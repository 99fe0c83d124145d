// The public types of SovereignClient: its options and what it tells the app.
import type { components } from "./schema.js"
import type { FeedEvent } from "./feed.js"
import type { HistoryMismatch } from "./chain.js"
import type { MlsClientOptions, Received } from "./mls.js"
import { ClientStore, type KeyValueStore } from "./storage.js"
import type { Authenticator } from "./webauthn.js"
import type { DeviceAlarm } from "./attest-verifier.js"

export type Schemas = components["schemas"]

export interface SovereignClientOptions {
  /** Server base URL, e.g. https://chat.example.org */
  baseUrl: string
  /** Where this device keeps its session, MLS state and cursor. */
  storage: ClientStore | KeyValueStore
  /** Performs passkey ceremonies (BrowserAuthenticator in apps). */
  authenticator?: Authenticator
  fetch?: typeof fetch
  mls?: MlsClientOptions
  /** Normal key packages to keep on the server (default 10). */
  keyPackageTarget?: number
  /** Attempts for a commit or send that keeps losing races (default 5). */
  maxAttempts?: number
  /**
   * Commit the MLS removal of a device the server cut off (a `remove_device`
   * notice: revoked device, disabled or deleted user, removed by an admin).
   * Only members can do it, and until someone does the group's keys still
   * include the device's leaf. Default true.
   */
  autoRemove?: boolean
  /**
   * Longest random wait before that commit, in ms (default 2000), so that
   * usually one member commits and the others find nothing left to do.
   */
  autoRemoveMaxDelayMs?: number
  /**
   * When the feed answers 410 (this device was away longer than the
   * server's retention), rejoin every group the server still lists by
   * external commit and resume the feed. Default true.
   */
  autoRejoin?: boolean
  /** Told after an automatic rejoin: the groups rejoined and those that failed. */
  onResync?: (r: ResyncResult) => void
  /**
   * The WebAuthn relying party id of the server's passkeys, for checking
   * device bindings (docs/verification.md). Default: the one GET /v1/me
   * names (rp_id), else the host of baseUrl.
   */
  rpId?: string
  /** Origins accepted in the clientDataJSON of bindings and approvals. Default: those a browser allows for the rp id (https on it or a subdomain; http on localhost). */
  origins?: string[]
}

/** What an automatic rejoin after 410 did. */
export interface ResyncResult {
  resumeAfter: number
  rejoined: Uint8Array[]
  failed: { groupId: Uint8Array; error: Error }[]
}

/** A user as the directory shows them. */
export type DirectoryUser = Schemas["DirectoryUserBody"]

/** A sign-in's coarse location: ISO country code and, with a city database, the city's English name. */
export type SignInLocation = Schemas["Location"]

/** A new_device notice: another device of this user signed in for the first time. */
export interface NewDeviceNotice {
  kind: "new_device"
  deviceId: string
  deviceName: string
  createdAt: string
  /** Where the sign-in came from, coarsely; only when the server has a GeoIP database (--geoip-db, off by default). */
  location?: SignInLocation
}

/** What the app is told about each processed feed event. */
export interface ClientEvent {
  seq: number
  eventId: string
  kind: string
  groupId?: Uint8Array
  result: Received | { kind: "notice"; notice: Record<string, unknown> } | NewDeviceNotice
  /** The feed event as received (ciphertext payload). */
  event: FeedEvent
}

export type Listener = (e: ClientEvent) => void | Promise<void>

/** Told about each history_mismatch found (docs/verification.md). */
export type HistoryListener = (m: HistoryMismatch) => void | Promise<void>

/** Told about each device that failed verification, unapproved passkey and account reset (docs/verification.md). */
export type DeviceAlarmListener = (a: DeviceAlarm) => void | Promise<void>


/** An automatic removal waiting for its timer (timer unset once committing). */
export interface PendingRemoval {
  timer?: ReturnType<typeof setTimeout>
  done: Promise<void>
  resolve: () => void
}

/** Options of SovereignClient.send. */
export interface SendOptions {
  /**
   * The message's Idempotency-Key (e.g. a UUID kept with a queued message):
   * sending again with the same key after a lost answer never stores a
   * second copy. Default: a fresh key per call.
   */
  idempotencyKey?: string
}

/** What commit returns: the new epoch and the commit's place in the feed. */
export interface CommitResult {
  epoch: number
  seq: number
  addedDevices: string[]
  removedDevices: string[]
}
