// People: the server's directory (a person by exact username; a prefix
// search when the admin allows it) and my own display name. Usernames are
// how people are identified; display names are how they are shown.
import { ApiError, type DirectoryUser, type SovereignClient } from "@sovereign-im/client"
import { me } from "./state"

export interface Person {
  id: string
  username: string
  displayName: string
  /** Active devices (only the exact lookup says; a search result does not). */
  devices?: number
}

function person(u: DirectoryUser): Person {
  return { id: u.id, username: u.username, displayName: u.display_name, devices: u.devices ? u.devices.length : undefined }
}

/** A username as people type it: trimmed, without a leading @, case-folded. */
export function normalUsername(s: string): string {
  return s.trim().replace(/^@/, "").toLowerCase()
}

export class People {
  /** False once the server said its directory allows exact lookups only. */
  searchAllowed = true

  constructor(private readonly client: () => SovereignClient) {}

  /** The person with exactly this username, or null when there is no one (404). */
  async find(username: string): Promise<Person | null> {
    try {
      return person(await this.client().lookupUser(normalUsername(username)))
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null
      throw e
    }
  }

  /** Usernames starting with prefix; null when the server does not allow searching (403 directory_search_disabled). */
  async search(prefix: string): Promise<Person[] | null> {
    const p = normalUsername(prefix)
    if (!this.searchAllowed || p.length < 2) return this.searchAllowed ? [] : null
    try {
      return (await this.client().searchUsers(p)).map(person)
    } catch (e) {
      if (e instanceof ApiError && e.code === "directory_search_disabled") {
        this.searchAllowed = false
        return null
      }
      throw e
    }
  }

  /** Changes my display name (PATCH /v1/me). */
  async setDisplayName(name: string): Promise<void> {
    const u = await this.client().setDisplayName(name.trim())
    if (me.value) me.value = { ...me.value, displayName: u.display_name }
  }
}
