// My devices: the server's list, each with the fingerprint of its MLS
// signature key as my conversations see it, and the rule that brings a new
// device of mine into my conversations: any of my other devices that is
// online adds it (it claims my own user's key packages: the server never
// hands out the caller's own).
import { fromBase64url, toHex, type SovereignClient } from "@sovereign-im/client"
import type { Conversations } from "./conversations"
import { conversations, me } from "./state"

export interface MyDevice {
  id: string
  name: string
  createdAt: string
  lastSeenAt?: string
  revokedAt?: string
  current: boolean
  fingerprint?: string
}

/** A short, readable fingerprint: SHA-256 of the key, first 16 bytes in groups of 4 hex digits. */
export async function fingerprint(key: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", key as BufferSource))
  return toHex(h.subarray(0, 16)).match(/.{4}/g)!.join(" ")
}

export class Devices {
  private syncing?: Promise<void>

  constructor(
    private readonly convs: Conversations,
    private readonly client: () => SovereignClient,
  ) {}

  async list(): Promise<MyDevice[]> {
    const r = await this.client().api.GET("/v1/me/devices", {})
    const keys = new Map<string, Uint8Array>()
    for (const c of Object.values(conversations.value)) {
      if (c.state !== "active") continue
      try {
        for (const m of await this.client().mls.members(fromBase64url(c.id))) keys.set(m.deviceId, m.signatureKey)
      } catch {
        // a group this device lost: no view of it
      }
    }
    const out: MyDevice[] = []
    for (const d of r.data?.devices ?? []) {
      const k = keys.get(d.id)
      out.push({
        id: d.id,
        name: d.name,
        createdAt: d.created_at,
        lastSeenAt: d.last_seen_at ?? undefined,
        revokedAt: d.revoked_at ?? undefined,
        current: d.current,
        fingerprint: k ? await fingerprint(k) : undefined,
      })
    }
    return out
  }

  async revoke(id: string): Promise<void> {
    const r = await this.client().api.DELETE("/v1/me/devices/{device_id}", { params: { path: { device_id: id } } })
    if (!r.response.ok) throw new Error(`revoke failed: ${r.response.status}`)
  }

  /** Adds my active devices that are missing from my active conversations. */
  sync(): Promise<void> {
    this.syncing ??= this.doSync().finally(() => (this.syncing = undefined))
    return this.syncing
  }

  private async doSync(): Promise<void> {
    const self = me.value
    if (!self) return
    const r = await this.client().api.GET("/v1/me/devices", {})
    const mine = new Set((r.data?.devices ?? []).filter((d) => !d.revoked_at && d.id !== self.deviceId).map((d) => d.id))
    if (mine.size === 0) return
    for (const c of Object.values(conversations.value)) {
      if (c.state !== "active") continue
      const inGroup = new Set((await this.client().mls.members(fromBase64url(c.id)).catch(() => [])).map((m) => m.deviceId))
      if (!inGroup.has(self.deviceId)) continue
      const missing = [...mine].filter((d) => !inGroup.has(d))
      if (missing.length === 0) continue
      const kps = (await this.convs.claim([self.username])).filter((k) => missing.includes(k.deviceId))
      if (kps.length === 0) continue
      await this.convs.addDevices(c.id, kps)
      await this.convs.sendMeta(c.id)
    }
  }
}
