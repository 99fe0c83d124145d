// My devices: the server's list, each with the fingerprint of its MLS
// signature key as my conversations see it, and the rule that brings a new
// device of mine into my conversations: it joins them by itself, by
// external commit (none of my other devices has to be online).
import { fromBase64, fromBase64url, toBase64url, toHex, type SovereignClient } from "@sovereign-im/client"
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
  /** The name of the passkey whose approval of this device's key verified (docs/verification.md); undefined: not approved. */
  approvedBy?: string
}

/** A short, readable fingerprint: SHA-256 of the key, first 16 bytes in groups of 4 hex digits. */
export async function fingerprint(key: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", key as BufferSource))
  return toHex(h.subarray(0, 16)).match(/.{4}/g)!.join(" ")
}

export class Devices {
  private syncing?: Promise<string[]>

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
    const approved = new Map<string, string>()
    try {
      const [checks, passkeys] = await Promise.all([this.client().verifyMyDevices(), this.client().passkeys()])
      const names = new Map(passkeys.map((p) => [toBase64url(fromBase64(p.credential_id)), p.name]))
      for (const c of checks) if (c.check.ok) approved.set(c.deviceId, names.get(c.check.credentialId) ?? c.check.credentialId.slice(0, 8))
    } catch {
      // the directory could not be read: every device shows as not approved
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
        approvedBy: approved.get(d.id),
      })
    }
    return out
  }

  async revoke(id: string): Promise<void> {
    const r = await this.client().api.DELETE("/v1/me/devices/{device_id}", { params: { path: { device_id: id } } })
    if (!r.response.ok) throw new Error(`revoke failed: ${r.response.status}`)
  }

  /**
   * Joins, by external commit, each conversation where another device of
   * mine is a member and this one is not (a new device, or one a
   * conversation gained while it was away). It needs no other device of
   * mine to be online: the server keeps each group's GroupInfo. The server
   * takes one commit per epoch: a join that lost the race (409) is retried
   * by the SDK on the new epoch, and a group this device was meanwhile
   * added to by a Welcome is no longer listed, so it is never joined twice.
   */
  sync(): Promise<string[]> {
    this.syncing ??= this.joinMine().finally(() => (this.syncing = undefined))
    return this.syncing
  }

  private async joinMine(): Promise<string[]> {
    if (!me.value) return []
    const client = this.client()
    const r = await client.api.GET("/v1/me/groups", {})
    const joined: string[] = []
    for (const g of r.data?.groups ?? []) {
      const gid = fromBase64(g.id)
      const id = toBase64url(gid)
      if (await client.mls.hasGroup(gid)) continue
      try {
        await client.joinExternally(gid)
      } catch {
        continue // retried on the next round
      }
      await this.convs.joinedExternally(id)
      joined.push(id)
    }
    return joined
  }
}
