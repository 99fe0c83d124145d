// SovereignClient's key packages, groups and people (see client.ts).
import { fromBase64, toBase64, toBase64url } from "./bytes.js"
import type { Problem } from "./errors.js"
import { encodeHead } from "./chain.js"
import { parseKeyPackage, type PendingCommit } from "./mls.js"
import type { DirectoryUser, Schemas, PendingRemoval, CommitResult } from "./client-types.js"
import { problemOf, ok, suiteId, parseDevice } from "./client-util.js"
import { ClientBase } from "./client-base.js"

/** Key packages, groups, people and devices of SovereignClient (see client.ts). */
export abstract class GroupsClient extends ClientBase {
  /** Reads the feed up to its end (client.ts). */
  abstract catchUp(): Promise<boolean>

  // --- key packages ------------------------------------------------------------

  /**
   * Keeps keyPackageTarget normal key packages and one last-resort package
   * on the server: counts what is left and uploads the difference.
   */
  async replenishKeyPackages(): Promise<number> {
    const counts = ok(await this.api.GET("/v1/key-packages/count", {}), "countKeyPackages")
    const suite = suiteId(this.mls.suite)
    const mine = counts.suites?.find((s) => s.cipher_suite === suite)
    const target = this.o.keyPackageTarget ?? 10
    const missing = Math.max(0, target - (mine?.normal ?? 0))
    const needLastResort = !mine?.last_resort
    const n = missing + (needLastResort ? 1 : 0)
    if (n === 0) return 0
    const kps = await this.mls.generateKeyPackages(n, { lastResort: needLastResort })
    try {
      ok(
        await this.api.POST("/v1/key-packages", {
          body: {
            key_packages: kps.map((k) => toBase64(k.keyPackage)),
            last_resort_index: needLastResort ? 0 : undefined,
          },
        }),
        "uploadKeyPackages",
      )
    } catch (e) {
      await this.mls.forgetKeyPackages(kps.map((k) => k.ref))
      throw e
    }
    return n
  }

  // --- groups -------------------------------------------------------------------

  /** Creates a group with this device as its only member; returns its id. */
  async createGroup(): Promise<Uint8Array> {
    return this.lock.run(async () => {
      const { groupId, groupInfo } = await this.mls.createGroup()
      try {
        ok(
          await this.api.POST("/v1/groups", { body: { group_id: toBase64url(groupId), group_info: toBase64(groupInfo) } }),
          "createGroup",
        )
      } catch (e) {
        await this.mls.dropGroup(groupId)
        throw e
      }
      return groupId
    })
  }

  /** The server's view of a group: epoch and member devices with their users. */
  async group(groupId: Uint8Array): Promise<Schemas["GroupBody"]> {
    return ok(
      await this.api.GET("/v1/groups/{group_id}", { params: { path: { group_id: toBase64url(groupId) } } }),
      "getGroup",
    )
  }

  /**
   * Adds every device of the given users (ids or usernames): claims one key
   * package per device, commits with the ratchet tree in the Welcome, and
   * applies the new epoch once the server accepted it. Returns the added
   * device ids.
   */
  async addMembers(groupId: Uint8Array, users: string[]): Promise<string[]> {
    const kps: Uint8Array[] = []
    for (const u of users) {
      const claim = ok(
        await this.api.POST("/v1/users/{user}/key-packages/claim", {
          params: { path: { user: u } },
          body: { cipher_suite: suiteId(this.mls.suite) },
        }),
        "claimKeyPackages",
      )
      const claimed: { bytes: Uint8Array; deviceId: string; signatureKey: Uint8Array }[] = []
      for (const k of claim.key_packages ?? []) {
        const bytes = fromBase64(k.key_package as unknown as string)
        try {
          const p = parseKeyPackage(bytes, this.mls.suite)
          claimed.push({ bytes, deviceId: p.deviceId, signatureKey: p.keyPackage.leafNode.signaturePublicKey })
        } catch {
          // Not a key package we could add anyway.
        }
      }
      // A key package whose device no passkey of the user approved is never added.
      kps.push(...(await this.checks.keyPackages(u, claimed, groupId)))
    }
    if (kps.length === 0) throw new Error("none of these users has a device with a key package")
    const res = await this.commit(groupId, async (members) => ({
      // On a retry, a device the winning commit added meanwhile is skipped.
      add: kps.filter((kp) => !members.has(this.deviceOfKeyPackage(kp))),
    }))
    return res.addedDevices
  }

  protected deviceOfKeyPackage(kp: Uint8Array): string {
    return parseDevice(kp, this.mls.suite)
  }

  /** Removes devices (by id) from a group. */
  async removeDevices(groupId: Uint8Array, deviceIds: string[]): Promise<void> {
    await this.commit(groupId, async (members) => ({ removeDevices: deviceIds.filter((d) => members.has(d)) }))
  }

  /** Removes every device of the given users (usernames or ids) from a group. */
  async removeMembers(groupId: Uint8Array, users: string[]): Promise<string[]> {
    const g = await this.group(groupId)
    const devices = (g.members ?? []).filter((m) => users.includes(m.username) || users.includes(m.user_id)).map((m) => m.device_id)
    await this.removeDevices(groupId, devices)
    return devices
  }

  /** An empty commit: fresh keys for this device (post-compromise security). */
  async updateKeys(groupId: Uint8Array): Promise<number> {
    return (await this.commit(groupId, async () => ({}))).epoch
  }

  /**
   * Builds, sends and applies a commit; on 409 processes the feed up to the
   * winning commit and builds it again from the new state. `change` is
   * called before each attempt with the current member devices.
   */
  async commit(
    groupId: Uint8Array,
    change: (members: Set<string>) => Promise<{ add?: Uint8Array[]; removeDevices?: string[] }>,
  ): Promise<CommitResult> {
    return (await this.commitIfNeeded(groupId, change))!
  }

  /**
   * commit, except that `change` may answer null (nothing to do, e.g. the
   * winner of a race already made the change): then nothing is sent and
   * the result is null.
   */
  protected async commitIfNeeded(
    groupId: Uint8Array,
    change: (members: Set<string>) => Promise<{ add?: Uint8Array[]; removeDevices?: string[] } | null>,
  ): Promise<CommitResult | null> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.lock.run(async () => {
        const members = new Set((await this.mls.members(groupId)).map((m) => m.deviceId))
        const c = await change(members)
        if (c === null) return { skipped: true as const }
        const pending: PendingCommit = await this.mls.prepareCommit(groupId, c, encodeHead(this.history.head(groupId)))
        const r = await this.api.POST("/v1/groups/{group_id}/commits", {
          params: { path: { group_id: toBase64url(groupId) }, header: { "Idempotency-Key": crypto.randomUUID() } },
          body: {
            commit: toBase64(pending.commit),
            welcome: pending.welcome ? toBase64(pending.welcome) : undefined,
            group_info: toBase64(pending.groupInfo),
            removed_devices: pending.removedDevices.length ? pending.removedDevices : undefined,
          },
        })
        if (r.response.status === 409) {
          return { conflict: problemOf(r.error, r.response, "commitGroup") }
        }
        if (r.response.status === 422 && (r.error as Problem | undefined)?.code === "pending_removal_missing") {
          // A member left just now: process its proposal, then commit it too.
          return { conflict: problemOf(r.error, r.response, "commitGroup") }
        }
        const body = ok(r, "commitGroup")
        await this.mls.applyCommit(pending)
        return {
          done: {
            epoch: body.epoch,
            seq: body.commit.seq,
            addedDevices: body.added_devices ?? [],
            removedDevices: body.removed_devices ?? [],
          },
        }
      })
      if ("skipped" in outcome) return null
      if (outcome.done) return outcome.done
      if (attempt >= max) throw outcome.conflict
      await this.catchUpGroup(groupId, outcome.conflict.problem.current_epoch)
    }
  }

  /** Processes waiting feed events until the group reaches epoch (or the feed is drained). */
  protected async catchUpGroup(groupId: Uint8Array, epoch?: number): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const drained = await this.catchUp()
      if (epoch === undefined || (await this.mls.epoch(groupId)) >= epoch) return
      if (drained) await new Promise((r) => setTimeout(r, 20 * (i + 1))) // the winner's commit is not in our feed yet
    }
    throw new Error(`group did not reach epoch ${epoch}`)
  }

  // --- people and devices ---------------------------------------------------------

  /** Finds a user by exact username (404 ApiError user_not_found when there is none). */
  async lookupUser(username: string): Promise<DirectoryUser> {
    return ok(await this.api.GET("/v1/users/{username}", { params: { path: { username } } }), "lookupUser")
  }

  /** Searches usernames by prefix (only when the server's directory setting is "search"). */
  async searchUsers(prefix: string): Promise<DirectoryUser[]> {
    return ok(await this.api.GET("/v1/users", { params: { query: { prefix } } }), "searchUsers").users ?? []
  }

  /** Changes this user's display name. */
  async setDisplayName(displayName: string): Promise<Schemas["UserInfo"]> {
    return ok(await this.api.PATCH("/v1/me", { body: { display_name: displayName } }), "updateMe")
  }

  /**
   * Deletes this account for good (all devices leave their groups), after a
   * step-up with one of the account's passkeys (the authenticator asks for
   * it). The local storage is cleared afterwards.
   */
  async deleteAccount(): Promise<void> {
    const grant = await this.stepUp("delete_account")
    this.stop()
    ok(
      await this.api.DELETE("/v1/me", {
        params: { header: { "Sovereign-Step-Up": grant } },
        body: { confirm_username: this.username },
      }),
      "deleteMe",
    )
    await this.store.clear()
    this.session = undefined
    this.mlsClient = undefined
  }

  /**
   * Joins a group by external commit: for a new device of a user who is in
   * the group on another device, or this device rejoining after its feed
   * expired (its old leaf is replaced). Retries lost races. Returns the
   * group's new epoch.
   */
  async joinExternally(groupId: Uint8Array): Promise<number> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const gi = ok(
        await this.api.GET("/v1/groups/{group_id}/group-info", { params: { path: { group_id: toBase64url(groupId) } } }),
        "getGroupInfo",
      )
      const outcome = await this.lock.run(async () => {
        const pending = await this.mls.prepareExternalJoin(fromBase64(gi.group_info as unknown as string))
        const r = await this.api.POST("/v1/groups/{group_id}/commits", {
          params: { path: { group_id: toBase64url(groupId) }, header: { "Idempotency-Key": crypto.randomUUID() } },
          body: { commit: toBase64(pending.commit), group_info: toBase64(pending.groupInfo) },
        })
        if (r.response.status === 409) return { conflict: problemOf(r.error, r.response, "commitGroup") }
        const body = ok(r, "commitGroup")
        await this.mls.applyExternalJoin(pending, body.commit.seq)
        // A (re)join starts this device's view of the chain afresh (docs/verification.md, Limits).
        this.history.forget(groupId)
        await this.store.deleteChain(groupId)
        return { epoch: body.epoch }
      })
      if ("epoch" in outcome) return outcome.epoch!
      if (attempt >= max) throw outcome.conflict
      await new Promise((res) => setTimeout(res, 50 * attempt + Math.random() * 100))
    }
  }

  /**
   * Joins, by external commit, every group where another device of this
   * user is a member and this one is not (what a new device does after its
   * first sign-in). Returns the groups joined.
   */
  async joinMyGroups(): Promise<Uint8Array[]> {
    const list = ok(await this.api.GET("/v1/me/groups", {}), "listJoinableGroups")
    const joined: Uint8Array[] = []
    for (const g of list.groups ?? []) {
      const gid = fromBase64(g.id)
      if (await this.mls.hasGroup(gid)) continue
      await this.joinExternally(gid)
      joined.push(gid)
    }
    return joined
  }

  /**
   * Leaves a group: sends a Remove proposal for our own leaf (another
   * member's client commits it) and forgets the group. Returns true when we
   * were the last member and the server deleted the group.
   */
  async leaveGroup(groupId: Uint8Array): Promise<boolean> {
    const max = this.o.maxAttempts ?? 5
    for (let attempt = 1; ; attempt++) {
      const r = await this.lock.run(async () => {
        const { proposal } = await this.mls.prepareLeave(groupId, encodeHead(this.history.head(groupId)))
        const res = await this.api.POST("/v1/groups/{group_id}/leave", {
          params: { path: { group_id: toBase64url(groupId) } },
          body: { proposal: toBase64(proposal) },
        })
        if (res.response.ok) {
          await this.mls.dropGroup(groupId)
          this.history.forget(groupId)
        }
        return res
      })
      if (r.response.status === 409 && attempt < max) {
        await this.catchUpGroup(groupId, problemOf(r.error, r.response, "leaveGroup").problem.current_epoch)
        continue
      }
      return ok(r, "leaveGroup").group_deleted
    }
  }

  /** Commits the proposals waiting in a group (members that left), after a short random delay. */
  protected commitPendingSoon(groupId: Uint8Array): void {
    const key = toBase64url(groupId) + "/pending"
    if (this.removals.has(key)) return
    let resolve!: () => void
    const entry: PendingRemoval = { done: new Promise<void>((r) => (resolve = r)), resolve }
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      this.commitIfNeeded(groupId, async () => ((await this.mls.pendingRemovals(groupId)).length > 0 ? {} : null))
        .catch(() => null)
        .finally(() => {
          this.removals.delete(key)
          resolve()
        })
    }, Math.random() * (this.o.autoRemoveMaxDelayMs ?? 2000))
    this.removals.set(key, entry)
  }

  /** Uploads fresh key packages for those a key_packages_expiring notice announced. */
  protected replaceExpiringSoon(n: Record<string, unknown>): void {
    if (n.cipher_suite !== suiteId(this.mls.suite)) return
    const normal = typeof n.normal === "number" ? Math.min(n.normal, 100) : 0
    const lastResort = n.last_resort === true
    const prev = this.replenishing ?? Promise.resolve()
    this.replenishing = prev
      .then(() => this.uploadFresh(normal, lastResort))
      .catch(() => 0)
      .then(() => {
        this.replenishing = undefined
      })
  }

  /** Generates and uploads `normal` key packages and, if asked, a new last-resort one. */
  async uploadFresh(normal: number, lastResort: boolean): Promise<number> {
    const n = normal + (lastResort ? 1 : 0)
    if (n === 0) return 0
    const kps = await this.mls.generateKeyPackages(n, { lastResort })
    try {
      ok(
        await this.api.POST("/v1/key-packages", {
          body: { key_packages: kps.map((k) => toBase64(k.keyPackage)), last_resort_index: lastResort ? 0 : undefined },
        }),
        "uploadKeyPackages",
      )
    } catch (e) {
      await this.mls.forgetKeyPackages(kps.map((k) => k.ref))
      throw e
    }
    return n
  }
}
