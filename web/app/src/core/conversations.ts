// Conversations and their messages: kept in memory as signals, persisted
// sealed in IndexedDB, fed by the SDK's processed feed events. A
// conversation is an MLS group; its name and colour travel inside it as
// "meta" envelopes, never in clear to the server.
import { ApiError, fromBase64, fromBase64url, toBase64url, type ClientEvent, type SovereignClient } from "@sovereign-im/client"
import type { AppDB, Sealer } from "../storage/db"
import { COLORS, decodeEnvelope, encodeEnvelope, type Envelope } from "./envelope"
import { conversations, me, messages, nameOf, openConversation, type Conversation, type Member, type Message } from "./state"
import { t } from "../strings"
import { attachmentLabel } from "./attachments"

export class Conversations {
  /** The newest message from someone else this page decrypted (the service worker asks for it when a push arrives). */
  lastIncoming?: { fromName: string; t: number; at: number }
  /** Conversations waiting to re-send their name and colour to a device that joined by itself (external commit). */
  private metaDue = new Map<string, ReturnType<typeof setTimeout>>()
  /** group/username pairs already announced as having left (their removal commit says nothing more). */
  private left = new Set<string>()
  /** Every member device seen per conversation (the server's list drops a device that left before its removal is committed). */
  private known = new Map<string, Member>()
  constructor(
    private readonly db: AppDB,
    private readonly sealer: Sealer,
    private readonly client: () => SovereignClient,
  ) {}

  // --- persistence -------------------------------------------------------------

  async load(): Promise<void> {
    const out: Record<string, Conversation> = {}
    for (const row of await this.db.convs.toArray()) {
      try {
        out[row.id] = await this.sealer.openJSON<Conversation>("conv/" + row.id, row.v)
      } catch {
        // sealed under another profile's key: unreadable, skip
      }
    }
    conversations.value = out
  }

  async loadMessages(conv: string): Promise<void> {
    const rows = await this.db.msgs.where("[conv+t]").between([conv, -Infinity], [conv, Infinity]).toArray()
    const list: Message[] = []
    for (const r of rows) list.push(await this.sealer.openJSON<Message>("msg/" + r.id, r.v))
    messages.value = { ...messages.value, [conv]: list }
  }

  async saveConv(c: Conversation): Promise<void> {
    conversations.value = { ...conversations.value, [c.id]: c }
    await this.db.convs.put({ id: c.id, t: c.lastTime, v: await this.sealer.sealJSON("conv/" + c.id, c) })
  }

  /** Stores a message (or its new state) and shows it if its conversation is loaded. Returns false for a duplicate. */
  async putMessage(m: Message, { replace = false } = {}): Promise<boolean> {
    const key = m.conv + "/" + m.id
    if (!replace && (await this.db.msgs.get(key))) return false
    await this.db.msgs.put({ id: key, conv: m.conv, t: m.t, v: await this.sealer.sealJSON("msg/" + key, m) })
    const list = messages.value[m.conv]
    if (list) {
      const i = list.findIndex((x) => x.id === m.id)
      const next = i >= 0 ? list.map((x, j) => (j === i ? m : x)) : [...list, m].sort((a, b) => a.t - b.t)
      messages.value = { ...messages.value, [m.conv]: next }
    }
    return true
  }

  conv(id: string): Conversation | undefined {
    return conversations.value[id]
  }

  private fresh(id: string): Conversation {
    return { id, color: COLORS[Math.floor(Math.random() * COLORS.length)]!, members: [], lastTime: Date.now(), lastText: "", unread: 0, state: "active" }
  }

  /** The server's member list (device → user), used to name senders. */
  async refreshMembers(id: string): Promise<Member[]> {
    const g = await this.client().group(fromBase64url(id))
    const members = (g.members ?? []).map((m) => ({ deviceId: m.device_id, userId: m.user_id, username: m.username, displayName: m.display_name || undefined }))
    for (const m of members) this.known.set(id + "/" + m.deviceId, m)
    const c = this.conv(id) ?? this.fresh(id)
    await this.saveConv({ ...c, members })
    return members
  }

  /** The users who still have a device in this device's MLS view of the group, except the given devices. */
  private async usersInTree(id: string, except: string[] = []): Promise<Set<string>> {
    const tree = await this.client().mls.members(fromBase64url(id)).catch(() => [])
    const users = new Set<string>()
    for (const d of tree) {
      const m = this.known.get(id + "/" + d.deviceId)
      if (m && !except.includes(d.deviceId)) users.add(m.userId)
    }
    return users
  }

  // --- incoming ------------------------------------------------------------------

  /** Handles one processed feed event (called by the SDK in feed order). */
  async onEvent(e: ClientEvent): Promise<void> {
    const r = e.result
    switch (r.kind) {
      case "joined": {
        const id = toBase64url(r.groupId)
        const c = this.conv(id) ?? this.fresh(id)
        await this.saveConv({ ...c, state: "active", lastTime: Date.parse(e.event.serverTime) || Date.now() })
        await this.refreshMembers(id).catch(() => undefined)
        return
      }
      case "commit": {
        const id = toBase64url(r.groupId)
        const c = this.conv(id)
        if (!c) return
        const before = new Map(c.members.map((m) => [m.deviceId, m]))
        if (r.removedSelf && r.committerDeviceId && before.get(r.committerDeviceId)?.userId === me.value?.userId) {
          // My other device left this conversation for me (it removed this device first).
          await this.forget(id)
          return
        }
        if (r.removedSelf) {
          await this.saveConv({ ...c, state: "removed" })
          await this.system(id, e.eventId, Date.parse(e.event.serverTime), t.removedFromChat)
          return
        }
        const members = await this.refreshMembers(id).catch(() => c.members)
        const after = new Map(members.map((m) => [m.deviceId, m]))
        const userNames = (ms: Member[]) => new Set(ms.map((m) => m.username))
        const was = userNames([...before.values()])
        // Who is gone is read from the MLS tree after the commit: the
        // server's list may already lack someone who left just after it.
        const still = await this.usersInTree(id)
        for (const d of r.removedDevices) {
          const m = before.get(d) ?? this.known.get(id + "/" + d)
          const u = m?.username
          if (m && u && was.has(u) && !still.has(m.userId) && !this.left.has(id + "/" + u)) await this.system(id, `${e.eventId}/-${u}`, Date.parse(e.event.serverTime), t.memberRemoved(u))
        }
        // A device joined by itself (external commit: a new device of a
        // member, or one rejoining): it could not read the name and colour
        // sent before, so tell it again, once per conversation.
        if (r.committerDeviceId && r.addedDevices.includes(r.committerDeviceId)) this.resendMetaSoon(id)
        for (const d of r.addedDevices) {
          const u = after.get(d)?.username
          if (u && !was.has(u)) {
            was.add(u)
            await this.system(id, `${e.eventId}/+${u}`, Date.parse(e.event.serverTime), t.memberAdded(u))
          }
        }
        return
      }
      case "proposal": {
        // A member left: it proposed its own removal (the server ended its
        // membership at once; another member's client commits it).
        const id = toBase64url(r.groupId)
        const c = this.conv(id)
        if (!c || !r.senderDeviceId || !r.removesDevices.includes(r.senderDeviceId)) return
        const who = this.known.get(id + "/" + r.senderDeviceId) ?? c.members.find((m) => m.deviceId === r.senderDeviceId)
        await this.refreshMembers(id).catch(() => undefined)
        const pending = await this.client().mls.pendingRemovals(fromBase64url(id)).catch(() => r.removesDevices)
        if (who && !(await this.usersInTree(id, [...pending, ...r.removesDevices])).has(who.userId) && !this.left.has(id + "/" + who.username)) {
          this.left.add(id + "/" + who.username)
          await this.system(id, `${e.eventId}/left-${who.username}`, Date.parse(e.event.serverTime), t.memberLeft(nameOf(who)))
        }
        return
      }
      case "application": {
        const id = toBase64url(r.groupId)
        const env = decodeEnvelope(r.plaintext)
        if (!env) return
        let c = this.conv(id) ?? this.fresh(id)
        let from = c.members.find((m) => m.deviceId === r.senderDeviceId)
        if (!from) {
          const ms = await this.refreshMembers(id).catch(() => c.members)
          from = ms.find((m) => m.deviceId === r.senderDeviceId)
          c = this.conv(id) ?? c
        }
        const mine = from?.userId === me.value?.userId
        if (env.type === "meta") {
          const due = this.metaDue.get(id)
          if (due) clearTimeout(due)
          this.metaDue.delete(id)
          c = this.conv(id) ?? c
          await this.saveConv({ ...c, name: env.name ?? c.name, color: env.color ?? c.color })
          if (env.name && env.name !== c.name) await this.system(id, env.id, env.t, t.chatRenamed(env.name))
          return
        }
        const time = Date.parse(e.event.serverTime) || env.t
        const body = env.type === "attachment"
          ? { kind: "attachment" as const, text: env.file.name ?? "", attachment: env.file, ...(env.voice ? { voice: true } : {}) }
          : { kind: "text" as const, text: env.text }
        const fresh = await this.putMessage({
          id: env.id,
          conv: id,
          t: time,
          ...body,
          fromUser: from?.userId,
          fromName: from ? nameOf(from) : t.unnamedPending,
          fromUsername: from?.username,
          fromDevice: r.senderDeviceId,
          mine,
          state: mine ? "sent" : "received",
        })
        if (!fresh) return
        if (!mine) this.lastIncoming = { fromName: from ? nameOf(from) : t.unnamedPending, t: time, at: Date.now() }
        const viewing = openConversation.value === id && document.visibilityState === "visible"
        const cur = this.conv(id) ?? c // re-read: other changes may have landed while we awaited
        await this.saveConv({ ...cur, lastTime: time, lastText: env.type === "attachment" ? attachmentLabel(env.file, env.voice) : env.text, unread: viewing || mine ? cur.unread : cur.unread + 1 })
        return
      }
    }
  }

  private async system(conv: string, id: string, time: number, text: string): Promise<void> {
    await this.putMessage({ id: "sys/" + id, conv, t: time || Date.now(), kind: "system", text, mine: false, state: "received" })
  }

  async markRead(id: string): Promise<void> {
    const c = this.conv(id)
    if (c && c.unread) await this.saveConv({ ...c, unread: 0 })
  }

  // --- changes ------------------------------------------------------------------------

  /**
   * Claims one key package per device of each user (this device is never
   * claimed). A username with no such user, or whose user has no device
   * with a key package, is an error that names it.
   */
  async claim(usernames: string[]): Promise<{ deviceId: string; keyPackage: Uint8Array }[]> {
    const out: { deviceId: string; keyPackage: Uint8Array }[] = []
    const client = this.client()
    for (const u of usernames) {
      const r = await client.api.POST("/v1/users/{user}/key-packages/claim", {
        params: { path: { user: u } },
        body: { cipher_suite: 1 },
      })
      if (r.response.status === 404) throw new UserFacingError(t.noSuchUser(u))
      if (!r.response.ok || !r.data) throw new ApiError(r.response.status, (r.error ?? {}) as never, "claimKeyPackages")
      const kps = r.data.key_packages ?? []
      if (kps.length === 0 && u !== me.value?.username) throw new UserFacingError(t.noSuchUser(u))
      for (const k of kps) out.push({ deviceId: k.device_id, keyPackage: fromBase64(k.key_package as unknown as string) })
    }
    return out
  }

  /** Adds devices (from claim) to a group, skipping those already in it. */
  async addDevices(id: string, kps: { deviceId: string; keyPackage: Uint8Array }[]): Promise<void> {
    if (kps.length === 0) return
    const before = new Set((this.conv(id)?.members ?? []).map((m) => m.username))
    const res = await this.client().commit(fromBase64url(id), async (members) => ({ add: kps.filter((k) => !members.has(k.deviceId)).map((k) => k.keyPackage) }))
    const members = await this.refreshMembers(id)
    // Our own commit is not processed again from the feed: say here who joined.
    const joined = new Set(members.filter((m) => res.addedDevices.includes(m.deviceId) && !before.has(m.username) && m.username !== me.value?.username).map((m) => m.username))
    for (const u of joined) await this.system(id, `${res.seq}/+${u}`, Date.now(), t.memberAdded(u))
  }

  /** Starts a conversation with people by username (and my other devices). */
  async create(usernames: string[], name?: string): Promise<string> {
    const mine = me.value!
    const others = [...new Set(usernames.map((u) => u.trim().toLowerCase()).filter((u) => u && u !== mine.username))]
    const kps = await this.claim([...others, mine.username])
    const gid = await this.client().createGroup()
    const id = toBase64url(gid)
    const c = { ...this.fresh(id), name: name?.trim() || undefined }
    await this.saveConv(c)
    await this.addDevices(id, kps)
    await this.sendMeta(id)
    return id
  }

  async addPeople(id: string, usernames: string[]): Promise<void> {
    await this.addDevices(id, await this.claim(usernames.map((u) => u.trim().toLowerCase()).filter(Boolean)))
    await this.sendMeta(id)
  }

  async removePerson(id: string, username: string): Promise<void> {
    await this.client().removeMembers(fromBase64url(id), [username])
    await this.refreshMembers(id)
    await this.system(id, `${crypto.randomUUID()}/-${username}`, Date.now(), t.memberRemoved(username))
  }

  async rename(id: string, name: string): Promise<void> {
    const c = this.conv(id)
    if (!c) return
    await this.saveConv({ ...c, name: name.trim() || undefined })
    await this.sendMeta(id)
  }

  /** Tells the members (new ones included) the conversation's name and colour, encrypted. */
  async sendMeta(id: string): Promise<void> {
    const c = this.conv(id)
    if (!c) return
    const env: Envelope = { type: "meta", id: crypto.randomUUID(), t: Date.now(), name: c.name, color: c.color }
    await this.client().send(fromBase64url(id), encodeEnvelope(env), { idempotencyKey: env.id })
  }

  /**
   * Leaves a conversation for me: my other devices in it are removed by a
   * commit first (a member cannot commit its own removal), then this device
   * proposes its own removal, which the others' clients commit. The
   * conversation and its history are deleted from this browser.
   */
  async leave(id: string): Promise<void> {
    if (this.conv(id)?.state !== "active") return this.forget(id) // no longer a member: nothing to tell anyone
    const self = me.value!
    const gid = fromBase64url(id)
    const client = this.client()
    const inTree = new Set((await client.mls.members(gid)).map((m) => m.deviceId))
    const myOthers = ((await client.group(gid)).members ?? []).filter((m) => m.user_id === self.userId && m.device_id !== self.deviceId && inTree.has(m.device_id))
    if (myOthers.length) await client.removeDevices(gid, myOthers.map((m) => m.device_id))
    await client.leaveGroup(gid)
    await this.forget(id)
  }

  /** Deletes a conversation and its messages from this browser. */
  async forget(id: string): Promise<void> {
    const { [id]: _gone, ...rest } = conversations.value
    conversations.value = rest
    const { [id]: _msgs, ...restMsgs } = messages.value
    messages.value = restMsgs
    await this.db.transaction("rw", [this.db.convs, this.db.msgs], async () => {
      await this.db.convs.delete(id)
      await this.db.msgs.where("[conv+t]").between([id, -Infinity], [id, Infinity]).delete()
    })
  }

  /** Empties the in-memory conversations (the browser's data is being cleared). */
  forgetAll(): void {
    conversations.value = {}
    messages.value = {}
  }

  /** Shows a conversation this device joined by itself (external commit), with its members. */
  async joinedExternally(id: string): Promise<void> {
    const c = this.conv(id) ?? this.fresh(id)
    await this.saveConv({ ...c, state: "active", lastTime: Date.now() })
    await this.refreshMembers(id).catch(() => undefined)
  }

  /**
   * Re-sends the conversation's name and colour after a random wait of up to
   * 2 s, unless another member's meta message arrives first (usually one
   * member sends it; a second copy changes nothing).
   */
  private resendMetaSoon(id: string): void {
    if (this.metaDue.has(id)) return
    const timer = setTimeout(() => {
      this.metaDue.delete(id)
      if (this.conv(id)?.state === "active") void this.sendMeta(id).catch(() => undefined)
    }, Math.random() * 2000)
    this.metaDue.set(id, timer)
  }

  /** Marks conversations as needing this device to be added again (after a 410). */
  async markRejoin(ids: string[]): Promise<void> {
    for (const id of ids) {
      const c = this.conv(id)
      if (c && c.state === "active") await this.saveConv({ ...c, state: "rejoin" })
    }
  }
}

/** An error whose message is already a sentence for the person. */
export class UserFacingError extends Error {}
