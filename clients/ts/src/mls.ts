// The MLS (RFC 9420) side of a Sovereign device, on ts-mls. It owns key
// packages, group states and message processing; it never talks to the
// network. The rule it enforces: a commit's new state is applied only after
// the server accepted the commit (PendingCommit → applyCommit), so a lost
// race (409) leaves the old state intact to process the winner and retry.
import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  joinGroupExternal,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processMessage,
  zeroOutUint8Array,
  type AuthenticationService,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientConfig,
  type ClientState,
  type Credential,
  type IncomingMessageCallback,
  type KeyPackage,
  type MLSMessage,
  type Proposal,
} from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { makeKeyPackageRef } from "ts-mls/keyPackage.js"
import { ratchetTreeFromExtension } from "ts-mls/groupInfo.js"
import { decryptSenderData } from "ts-mls/privateMessage.js"
import { randomBytes } from "@noble/hashes/utils.js"
import { equal, toHex, utf8 } from "./bytes.js"
import { padmeLength } from "./attachments.js"
import type { ClientStore, GroupRecord } from "./storage.js"
import { safetyCodeOf, type SafetyCode } from "./safety.js"

/** Suite 0x0001: X25519, AES-128-GCM, SHA-256, Ed25519. */
export const DEFAULT_SUITE: CiphersuiteName = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
/** RFC 9420 §17.3 / draft-ietf-mls-extensions last_resort key-package extension type. */
export const LAST_RESORT_EXTENSION = 0x000a
/** BasicCredential identity prefix; the server binds key packages to the uploading device by it. */
export const IDENTITY_PREFIX = "sovereign:device:"

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The BasicCredential identity of a device: "sovereign:device:<uuid>". */
export function deviceIdentity(deviceId: string): Uint8Array {
  if (!UUID.test(deviceId)) throw new Error(`device id ${JSON.stringify(deviceId)} is not a lowercase UUID`)
  return utf8.encode(IDENTITY_PREFIX + deviceId)
}

/** The device id named by a credential, or undefined when it is not a Sovereign device credential. */
export function deviceIdOf(c: Credential): string | undefined {
  if (c.credentialType !== "basic") return undefined
  let s: string
  try {
    s = utf8.decode(c.identity)
  } catch {
    return undefined
  }
  if (!s.startsWith(IDENTITY_PREFIX)) return undefined
  const id = s.slice(IDENTITY_PREFIX.length)
  return UUID.test(id) ? id : undefined
}

/**
 * Accepts only Sovereign device credentials. The server has already checked
 * at upload that a key package's identity names the uploading device; this
 * keeps anything else out of our groups.
 */
export const sovereignAuthService: AuthenticationService = {
  async validateCredential(credential: Credential): Promise<boolean> {
    return deviceIdOf(credential) !== undefined
  },
}

export interface MlsClientOptions {
  suite?: CiphersuiteName
  /** Key-package lifetime in seconds (default 60 days; the server caps it, 90 days by default). */
  keyPackageLifetime?: number
  clientConfig?: Partial<ClientConfig>
  /**
   * Pad application messages to a size bucket (default true): the padded
   * content (the PrivateMessage's ciphertext less its 16-byte AEAD tag) is
   * paddedLength(n) bytes, so the server stores sizes that leak O(log log n)
   * bits of a message's length. A server run with --require-padding refuses
   * anything else. false: ts-mls's own padding (clientConfig.paddingConfig).
   */
  padding?: boolean
}

/** The smallest padding bucket (bytes of padded PrivateMessageContent). */
export const MIN_PADDED_BYTES = 256
/** The AEAD tag length of every RFC 9420 cipher suite. */
export const AEAD_TAG_BYTES = 16
/**
 * Upper bound of what a PrivateMessageContent adds to application data:
 * its length prefix (at most 4 bytes) and the signature with its prefix
 * (at most 2 + 139 bytes: ECDSA P-521 in DER; Ed25519 needs 1 + 64).
 */
const CONTENT_OVERHEAD_BOUND = 4 + 2 + 139

/** The padding bucket for n bytes of content: at least 256, then Padmé lengths (as the server's mls.PaddedLength). */
export function paddedLength(n: number): number {
  return padmeLength(Math.max(n, MIN_PADDED_BYTES))
}

/** Whether n bytes of padded content is a bucket (what --require-padding checks). */
export function isPaddedLength(n: number): boolean {
  return n >= MIN_PADDED_BYTES && padmeLength(n) === n
}

export interface GeneratedKeyPackage {
  ref: Uint8Array
  /** MLSMessage(key_package) bytes, ready to upload. */
  keyPackage: Uint8Array
  lastResort: boolean
}

/** A commit created but not yet accepted by the server. */
export interface PendingCommit {
  readonly groupId: Uint8Array
  /** The epoch the commit was made in; the server accepts it only if this is still current. */
  readonly epoch: number
  readonly commit: Uint8Array
  readonly welcome?: Uint8Array
  /** MLSMessage(group_info) for the new epoch, with external_pub and ratchet_tree. */
  readonly groupInfo: Uint8Array
  readonly addedDevices: string[]
  readonly removedDevices: string[]
  /** @internal */ readonly _newState: ClientState
  /** @internal */ readonly _consumed: Uint8Array[]
}

/** An external commit (RFC 9420 §12.4.3.2) built but not yet accepted by the server. */
export interface PendingExternalJoin {
  readonly groupId: Uint8Array
  readonly epoch: number
  /** MLSMessage(PublicMessage) commit, sender new_member_commit. */
  readonly commit: Uint8Array
  /** MLSMessage(group_info) of the new epoch. */
  readonly groupInfo: Uint8Array
  /** True when it replaces our own old leaf (a rejoin). */
  readonly resync: boolean
  /** @internal */ readonly _newState: ClientState
}

/** A feed event, as far as MLS processing needs it. */
export interface MlsEvent {
  seq: number
  kind: "application" | "proposal" | "commit" | "welcome" | "notice" | string
  groupId?: Uint8Array
  senderDeviceId?: string
  payload: Uint8Array
}

export type Received =
  | {
      kind: "application"
      groupId: Uint8Array
      epoch: number
      plaintext: Uint8Array
      senderDeviceId: string
      /** The message's MLS authenticated data (the sender's chain head, see chain.ts). */
      authenticatedData: Uint8Array
    }
  | {
      kind: "commit"
      groupId: Uint8Array
      epoch: number
      committerDeviceId?: string
      addedDevices: string[]
      removedDevices: string[]
      /** True when this commit removed us: nothing after it can be read. */
      removedSelf: boolean
      /** The commit's MLS authenticated data (the committer's chain head). */
      authenticatedData: Uint8Array
    }
  | {
      kind: "proposal"
      groupId: Uint8Array
      epoch: number
      senderDeviceId?: string
      /** Devices the proposal removes (a member leaving proposes its own removal). */
      removesDevices: string[]
      /** The proposal's MLS authenticated data (the sender's chain head). */
      authenticatedData: Uint8Array
    }
  | { kind: "joined"; groupId: Uint8Array; epoch: number; members: string[] }
  | { kind: "own"; groupId: Uint8Array }
  | { kind: "duplicate"; seq: number }
  | { kind: "ignored"; reason: string }
  | { kind: "failed"; groupId?: Uint8Array; error: Error }

export class MlsError extends Error {}

/** A member device as this client's MLS state sees it. */
export interface GroupMember {
  leafIndex: number
  deviceId: string
  /** The leaf's MLS signature public key (what a safety code or fingerprint is made of). */
  signatureKey: Uint8Array
}

function epochOf(s: ClientState): number {
  return Number(s.groupContext.epoch)
}

function decodeMessage(bytes: Uint8Array): MLSMessage {
  const d = decodeMlsMessage(bytes, 0)
  if (!d) throw new MlsError("bytes are not an MLSMessage")
  if (d[1] !== bytes.length) throw new MlsError(`MLSMessage followed by ${bytes.length - d[1]} trailing bytes`)
  if (d[0].version !== "mls10") throw new MlsError(`unsupported MLS version ${d[0].version}`)
  return d[0]
}

/** Decodes MLSMessage(key_package) bytes and checks suite and identity. */
export function parseKeyPackage(bytes: Uint8Array, suite: CiphersuiteName): { keyPackage: KeyPackage; deviceId: string } {
  const m = decodeMessage(bytes)
  if (m.wireformat !== "mls_key_package") throw new MlsError(`expected a key package, got ${m.wireformat}`)
  if (m.keyPackage.cipherSuite !== suite) throw new MlsError(`key package suite ${m.keyPackage.cipherSuite} is not ${suite}`)
  const deviceId = deviceIdOf(m.keyPackage.leafNode.credential)
  if (!deviceId) throw new MlsError("key package credential is not a Sovereign device identity")
  return { keyPackage: m.keyPackage, deviceId }
}

/**
 * One device's MLS engine. Callers serialise operations on a group (the
 * SovereignClient does, with one lock): each method loads the group's state
 * from the store and writes the successor back in one put.
 */
export class MlsClient {
  private constructor(
    readonly deviceId: string,
    readonly store: ClientStore,
    readonly suite: CiphersuiteName,
    private readonly cs: CiphersuiteImpl,
    private readonly config: ClientConfig,
    private readonly lifetimeSeconds: number,
    private readonly padding: boolean,
    /** The device's MLS signature key pair: every leaf of this device carries its public half. */
    private readonly signatureKeyPair: { publicKey: Uint8Array; signKey: Uint8Array },
  ) {}

  static async open(deviceId: string, store: ClientStore, opts: MlsClientOptions = {}): Promise<MlsClient> {
    deviceIdentity(deviceId) // validates the id
    const suite = opts.suite ?? DEFAULT_SUITE
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suite))
    const config: ClientConfig = { ...defaultClientConfig, authService: sovereignAuthService, ...opts.clientConfig }
    const pair = await MlsClient.deviceSignatureKeyPair(store, suite, cs)
    return new MlsClient(deviceId, store, suite, cs, config, opts.keyPackageLifetime ?? 60 * 24 * 3600, opts.padding ?? true, pair)
  }

  /**
   * This device's MLS signature public key, generated and stored on first
   * use: before sign-in, so that the passkey assertion of the sign-in can
   * bind it (docs/verification.md). Every key package, group and external
   * join of the device uses it.
   */
  static async deviceSignatureKey(store: ClientStore, suite: CiphersuiteName = DEFAULT_SUITE): Promise<Uint8Array> {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suite))
    return (await MlsClient.deviceSignatureKeyPair(store, suite, cs)).publicKey
  }

  private static async deviceSignatureKeyPair(
    store: ClientStore,
    suite: CiphersuiteName,
    cs: CiphersuiteImpl,
  ): Promise<{ publicKey: Uint8Array; signKey: Uint8Array }> {
    const have = await store.getSignatureKey(suite)
    if (have) return have
    const pair = await cs.signature.keygen()
    await store.putSignatureKey(suite, pair)
    return pair
  }

  /** The device's MLS signature public key (what its passkey binding approves). */
  get signatureKey(): Uint8Array {
    return this.signatureKeyPair.publicKey
  }

  private credential(): Credential {
    return { credentialType: "basic", identity: deviceIdentity(this.deviceId) }
  }

  private async newKeyPackage(lastResort: boolean) {
    const caps = defaultCapabilities()
    caps.extensions = [...new Set([...caps.extensions, LAST_RESORT_EXTENSION])]
    const now = BigInt(Math.floor(Date.now() / 1000))
    const lifetime = { notBefore: now - 300n, notAfter: now + BigInt(this.lifetimeSeconds) }
    const exts = lastResort ? [{ extensionType: LAST_RESORT_EXTENSION, extensionData: new Uint8Array(0) }] : []
    return generateKeyPackageWithKey(this.credential(), caps, lifetime, exts, this.signatureKeyPair, this.cs)
  }

  /**
   * Generates key packages and stores their private halves. Upload the
   * returned bytes; a Welcome naming one of their refs can then be joined.
   */
  async generateKeyPackages(count: number, opts: { lastResort?: boolean } = {}): Promise<GeneratedKeyPackage[]> {
    const out: GeneratedKeyPackage[] = []
    for (let i = 0; i < count; i++) {
      const lastResort = opts.lastResort === true && i === 0
      const kp = await this.newKeyPackage(lastResort)
      const ref = await makeKeyPackageRef(kp.publicPackage, this.cs.hash)
      const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage })
      await this.store.putKeyPackage({
        ref,
        keyPackage: bytes,
        initPrivateKey: kp.privatePackage.initPrivateKey,
        hpkePrivateKey: kp.privatePackage.hpkePrivateKey,
        signaturePrivateKey: kp.privatePackage.signaturePrivateKey,
        lastResort,
        createdAt: Date.now(),
      })
      out.push({ ref, keyPackage: bytes, lastResort })
    }
    return out
  }

  /** Forgets the private halves of key packages the server refused. */
  async forgetKeyPackages(refs: Uint8Array[]): Promise<void> {
    for (const r of refs) await this.store.deleteKeyPackage(r)
  }

  private async load(groupId: Uint8Array): Promise<{ rec: GroupRecord; state: ClientState }> {
    const rec = await this.store.getGroup(groupId)
    if (!rec) throw new MlsError(`unknown group ${toHex(groupId)}`)
    return { rec, state: this.decodeState(rec.state) }
  }

  private decodeState(b: Uint8Array): ClientState {
    const d = decodeGroupState(b, 0)
    if (!d || d[1] !== b.length) throw new MlsError("stored group state is corrupt")
    return { ...d[0], clientConfig: this.config }
  }

  private async save(groupId: Uint8Array, state: ClientState, lastSeq: number): Promise<void> {
    await this.store.putGroup({ groupId, state: encodeGroupState(state), lastSeq })
  }

  async hasGroup(groupId: Uint8Array): Promise<boolean> {
    return (await this.store.getGroup(groupId)) !== undefined
  }

  async epoch(groupId: Uint8Array): Promise<number> {
    return epochOf((await this.load(groupId)).state)
  }

  /** Whether we are still a member (false once a commit removed us). */
  async isActive(groupId: Uint8Array): Promise<boolean> {
    const rec = await this.store.getGroup(groupId)
    return rec !== undefined && this.decodeState(rec.state).groupActiveState.kind === "active"
  }

  /** The group's safety code at its current epoch (safety.ts, docs/verification.md). */
  async safetyCode(groupId: Uint8Array): Promise<SafetyCode> {
    return safetyCodeOf((await this.load(groupId)).state)
  }

  /** The member devices of a group by leaf index, as our state sees them. */
  async members(groupId: Uint8Array): Promise<GroupMember[]> {
    return membersOf((await this.load(groupId)).state)
  }

  /**
   * Creates a group with us as its only member (epoch 0) and returns its
   * GroupInfo. groupId defaults to 32 random bytes.
   */
  async createGroup(groupId: Uint8Array = randomBytes(32)): Promise<{ groupId: Uint8Array; groupInfo: Uint8Array }> {
    if (await this.hasGroup(groupId)) throw new MlsError(`group ${toHex(groupId)} exists already`)
    const kp = await this.newKeyPackage(false)
    const state = await createGroup(groupId, kp.publicPackage, kp.privatePackage, [], this.cs, this.config)
    await this.save(groupId, state, 0)
    return { groupId, groupInfo: await this.groupInfo(state) }
  }

  /** Forgets a group we created but the server refused, or one we left. */
  async dropGroup(groupId: Uint8Array): Promise<void> {
    await this.store.deleteGroup(groupId)
  }

  private async groupInfo(state: ClientState): Promise<Uint8Array> {
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], this.cs)
    return encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi })
  }

  /**
   * Creates a commit adding the devices of the given key packages
   * (MLSMessage bytes as claimed from the server) and removing the given
   * devices. Nothing is applied: send the bundle, then applyCommit on success
   * or drop it on 409 (process the winning commit, then prepare again).
   */
  async prepareCommit(
    groupId: Uint8Array,
    change: { add?: Uint8Array[]; removeDevices?: string[] } = {},
    authenticatedData?: Uint8Array,
  ): Promise<PendingCommit> {
    const { state } = await this.load(groupId)
    if (state.groupActiveState.kind !== "active") throw new MlsError("we are no longer a member of this group")
    const proposals: Proposal[] = []
    const addedDevices: string[] = []
    const current = membersOf(state)
    for (const bytes of change.add ?? []) {
      const { keyPackage, deviceId } = parseKeyPackage(bytes, this.suite)
      if (current.some((m) => m.deviceId === deviceId)) throw new MlsError(`device ${deviceId} is already a member`)
      if (addedDevices.includes(deviceId)) throw new MlsError(`device ${deviceId} is added twice`)
      proposals.push({ proposalType: "add", add: { keyPackage } })
      addedDevices.push(deviceId)
    }
    const removedDevices: string[] = []
    for (const d of change.removeDevices ?? []) {
      if (d === this.deviceId) throw new MlsError("a device cannot remove itself with a commit")
      const m = current.find((x) => x.deviceId === d)
      if (!m) throw new MlsError(`device ${d} is not a member`)
      proposals.push({ proposalType: "remove", remove: { removed: m.leafIndex } })
      removedDevices.push(d)
    }
    // Proposals received earlier (a member leaving by a self-Remove) are
    // committed by reference: their removed devices go in the bundle too.
    for (const d of pendingRemovals(state)) {
      if (!removedDevices.includes(d)) removedDevices.push(d)
    }
    const res = await createCommit(
      { state, cipherSuite: this.cs },
      { extraProposals: proposals, ratchetTreeExtension: true, authenticatedData },
    )
    return {
      groupId,
      epoch: epochOf(state),
      commit: encodeMlsMessage(res.commit),
      welcome: res.welcome
        ? encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome })
        : undefined,
      groupInfo: await this.groupInfo(res.newState),
      addedDevices,
      removedDevices,
      _newState: res.newState,
      _consumed: res.consumed,
    }
  }

  /**
   * Applies a commit the server accepted. Fails if the group moved on in
   * the meantime (the pending commit is then stale and must be dropped).
   */
  async applyCommit(p: PendingCommit): Promise<void> {
    const { rec, state } = await this.load(p.groupId)
    if (epochOf(state) !== p.epoch) {
      throw new MlsError(`pending commit is for epoch ${p.epoch} but the group is at ${epochOf(state)}`)
    }
    await this.save(p.groupId, p._newState, rec.lastSeq)
    for (const c of p._consumed) zeroOutUint8Array(c)
  }

  /** Devices removed by proposals waiting to be committed (members that left). */
  async pendingRemovals(groupId: Uint8Array): Promise<string[]> {
    return pendingRemovals((await this.load(groupId)).state)
  }

  /**
   * Builds an external commit that joins the group described by a GroupInfo
   * (MLSMessage bytes with the ratchet_tree and external_pub extensions). When
   * the tree still holds a leaf of this device (a rejoin after the feed
   * expired), the commit removes it. Nothing is stored: applyExternalJoin
   * after the server accepted the commit.
   */
  async prepareExternalJoin(groupInfoBytes: Uint8Array): Promise<PendingExternalJoin> {
    const m = decodeMessage(groupInfoBytes)
    if (m.wireformat !== "mls_group_info") throw new MlsError(`expected a GroupInfo, got ${m.wireformat}`)
    const gi = m.groupInfo
    const tree = ratchetTreeFromExtension(gi)
    if (!tree) throw new MlsError("the GroupInfo has no ratchet tree")
    const resync = tree.some((n) => n?.nodeType === "leaf" && deviceIdOf(n.leaf.credential) === this.deviceId)
    const kp = await this.newKeyPackage(false)
    const me = this.deviceId
    const config: ClientConfig = {
      ...this.config,
      // Our old leaf is ours by its credential, not by its signature key (a
      // new key package has a new one).
      keyPackageEqualityConfig: {
        compareKeyPackages: (a, b) => deviceIdOf(a.leafNode.credential) === deviceIdOf(b.leafNode.credential),
        compareKeyPackageToLeafNode: (a, b) => deviceIdOf(a.leafNode.credential) === me && deviceIdOf(b.credential) === me,
      },
    }
    const res = await joinGroupExternal(gi, kp.publicPackage, kp.privatePackage, resync, this.cs, undefined, config)
    const state = { ...res.newState, clientConfig: this.config }
    return {
      groupId: gi.groupContext.groupId,
      epoch: Number(gi.groupContext.epoch),
      commit: encodeMlsMessage({ version: "mls10", wireformat: "mls_public_message", publicMessage: res.publicMessage }),
      groupInfo: await this.groupInfo(state),
      resync,
      _newState: state,
    }
  }

  /** Stores the state of an external join the server accepted (its commit at seq). */
  async applyExternalJoin(p: PendingExternalJoin, seq: number): Promise<void> {
    await this.save(p.groupId, p._newState, seq)
  }

  /**
   * A Remove proposal for our own leaf, as a PublicMessage (the server checks
   * it from the clear bytes): send it to POST …/leave, then dropGroup.
   */
  async prepareLeave(groupId: Uint8Array, authenticatedData?: Uint8Array): Promise<{ proposal: Uint8Array; epoch: number }> {
    const { state } = await this.load(groupId)
    if (state.groupActiveState.kind !== "active") throw new MlsError("we are no longer a member of this group")
    const r = await createProposal(state, true, { proposalType: "remove", remove: { removed: state.privatePath.leafIndex } }, this.cs, authenticatedData)
    return { proposal: encodeMlsMessage(r.message), epoch: epochOf(state) }
  }

  /** Encrypts an application message; the returned bytes go to the server as is. */
  async encrypt(groupId: Uint8Array, plaintext: Uint8Array, authenticatedData?: Uint8Array): Promise<{ message: Uint8Array; epoch: number }> {
    const { rec, state } = await this.load(groupId)
    if (state.groupActiveState.kind !== "active") throw new MlsError("we are no longer a member of this group")
    // ts-mls pads the encoded content up to padUntilLength; with a bound on
    // the content's length as the target's floor, it comes out at exactly
    // the bucket.
    const padded: ClientState = this.padding
      ? {
          ...state,
          clientConfig: {
            ...state.clientConfig,
            paddingConfig: { kind: "padUntilLength", padUntilLength: paddedLength(plaintext.length + CONTENT_OVERHEAD_BOUND) },
          },
        }
      : state
    const r = await createApplicationMessage(padded, plaintext, this.cs, authenticatedData)
    // The sending generation is consumed whether or not the send succeeds: persist first.
    await this.save(groupId, { ...r.newState, clientConfig: this.config }, rec.lastSeq)
    for (const c of r.consumed) zeroOutUint8Array(c)
    const message = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage })
    return { message, epoch: epochOf(state) }
  }

  /**
   * Processes one feed event. Never throws for bad input: a message that
   * cannot be processed comes back as {kind: "failed"} and is marked as seen,
   * so one bad message cannot block the feed.
   */
  async receive(ev: MlsEvent): Promise<Received> {
    try {
      if (ev.kind === "welcome") return await this.receiveWelcome(ev)
      if (ev.kind === "application" || ev.kind === "commit" || ev.kind === "proposal") return await this.receiveGroupMessage(ev)
      return { kind: "ignored", reason: `event kind ${ev.kind} carries no MLS message` }
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e))
      if (ev.groupId) {
        // Record the sequence as processed so the feed moves on.
        const rec = await this.store.getGroup(ev.groupId)
        if (rec && ev.seq > rec.lastSeq) await this.store.putGroup({ ...rec, lastSeq: ev.seq })
      }
      return { kind: "failed", groupId: ev.groupId, error }
    }
  }

  private async receiveWelcome(ev: MlsEvent): Promise<Received> {
    const m = decodeMessage(ev.payload)
    if (m.wireformat !== "mls_welcome") throw new MlsError(`welcome event carries ${m.wireformat}`)
    for (const s of m.welcome.secrets) {
      const kp = await this.store.getKeyPackage(s.newMember)
      if (!kp) continue
      const pub = decodeMessage(kp.keyPackage)
      if (pub.wireformat !== "mls_key_package") throw new MlsError("stored key package is corrupt")
      const state = await joinGroup(
        m.welcome,
        pub.keyPackage,
        {
          initPrivateKey: kp.initPrivateKey,
          hpkePrivateKey: kp.hpkePrivateKey,
          signaturePrivateKey: kp.signaturePrivateKey,
        },
        emptyPskIndex,
        this.cs,
        undefined,
        undefined,
        this.config,
      )
      const groupId = state.groupContext.groupId
      const existing = await this.store.getGroup(groupId)
      if (existing && this.decodeState(existing.state).groupActiveState.kind === "active") {
        if (ev.seq <= existing.lastSeq) return { kind: "duplicate", seq: ev.seq }
        throw new MlsError("welcome for a group we are an active member of")
      }
      await this.save(groupId, state, ev.seq)
      // A normal key package is single use (RFC 9420 §16.8); the last-resort one stays.
      if (!kp.lastResort) await this.store.deleteKeyPackage(kp.ref)
      return { kind: "joined", groupId, epoch: epochOf(state), members: membersOf(state).map((x) => x.deviceId) }
    }
    return { kind: "ignored", reason: "welcome names none of our key packages" }
  }

  private async receiveGroupMessage(ev: MlsEvent): Promise<Received> {
    const m = decodeMessage(ev.payload)
    if (m.wireformat !== "mls_private_message" && m.wireformat !== "mls_public_message") {
      throw new MlsError(`group event carries ${m.wireformat}`)
    }
    const msgGroup = m.wireformat === "mls_private_message" ? m.privateMessage.groupId : m.publicMessage.content.groupId
    const msgEpoch = Number(m.wireformat === "mls_private_message" ? m.privateMessage.epoch : m.publicMessage.content.epoch)
    if (ev.groupId && !equal(ev.groupId, msgGroup)) throw new MlsError("message group id differs from the event's")
    const rec = await this.store.getGroup(msgGroup)
    if (!rec) return { kind: "ignored", reason: `not a member of group ${toHex(msgGroup)}` }
    if (ev.seq <= rec.lastSeq) return { kind: "duplicate", seq: ev.seq }
    const state = this.decodeState(rec.state)

    // Our own messages come back through the feed: an application message
    // cannot be decrypted by its sender, and our commits were applied when
    // the server accepted them.
    if (ev.senderDeviceId === this.deviceId) {
      await this.save(msgGroup, state, ev.seq)
      return { kind: "own", groupId: msgGroup }
    }
    if (state.groupActiveState.kind !== "active") throw new MlsError("removed from this group: cannot read later messages")
    if (ev.kind === "commit" && msgEpoch < epochOf(state)) {
      throw new MlsError(`commit for epoch ${msgEpoch} but we are at epoch ${epochOf(state)}`)
    }

    // Authenticate the sender: the leaf that signed the message, not the server's word.
    let senderDeviceId: string | undefined
    if (m.wireformat === "mls_private_message") {
      senderDeviceId = await this.privateSender(state, m.privateMessage)
    } else if (m.publicMessage.content.sender.senderType === "member") {
      senderDeviceId = leafDevice(state, m.publicMessage.content.sender.leafIndex)
    }
    // An external commit's sender is the joiner named by its path's leaf.
    let externalJoiner: string | undefined
    if (m.wireformat === "mls_public_message" && m.publicMessage.content.sender.senderType === "new_member_commit" &&
      m.publicMessage.content.contentType === "commit") {
      const leaf = m.publicMessage.content.commit.path?.leafNode
      externalJoiner = leaf ? deviceIdOf(leaf.credential) : undefined
    }

    // Covered by the AEAD (PrivateMessage) or the sender's signature (PublicMessage).
    const authenticatedData =
      m.wireformat === "mls_private_message" ? m.privateMessage.authenticatedData : m.publicMessage.content.authenticatedData
    let committer: number | undefined
    const added: string[] = []
    const removedLeaves: number[] = []
    const callback: IncomingMessageCallback = (incoming) => {
      if (incoming.kind === "commit") {
        committer = incoming.senderLeafIndex
        for (const p of incoming.proposals) {
          if (p.proposal.proposalType === "add") {
            const d = deviceIdOf(p.proposal.add.keyPackage.leafNode.credential)
            if (d) added.push(d)
          } else if (p.proposal.proposalType === "remove") removedLeaves.push(p.proposal.remove.removed)
        }
      }
      return acceptAll(incoming)
    }
    const res = await processMessage(m as never, state, emptyPskIndex, callback, this.cs)
    await this.save(msgGroup, res.newState, ev.seq)
    for (const c of res.consumed) zeroOutUint8Array(c)

    if (res.kind === "applicationMessage") {
      if (!senderDeviceId) throw new MlsError("application message from a sender without a device identity")
      return { kind: "application", groupId: msgGroup, epoch: msgEpoch, plaintext: res.message, senderDeviceId, authenticatedData }
    }
    const contentType =
      m.wireformat === "mls_private_message" ? m.privateMessage.contentType : m.publicMessage.content.contentType
    if (contentType === "proposal") {
      const p = m.wireformat === "mls_public_message" && m.publicMessage.content.contentType === "proposal" ? m.publicMessage.content.proposal : undefined
      const removesDevices = p?.proposalType === "remove" ? [leafDevice(state, p.remove.removed)].filter((d): d is string => !!d) : []
      return { kind: "proposal", groupId: msgGroup, epoch: msgEpoch, senderDeviceId, removesDevices, authenticatedData }
    }
    // Removed leaves are named by the tree before the commit.
    const removedDevices = removedLeaves.map((l) => leafDevice(state, l)).filter((d): d is string => !!d)
    return {
      kind: "commit",
      groupId: msgGroup,
      epoch: epochOf(res.newState),
      committerDeviceId: externalJoiner ?? (committer !== undefined ? leafDevice(state, committer) : senderDeviceId),
      addedDevices: externalJoiner && !added.includes(externalJoiner) ? [...added, externalJoiner] : added,
      removedDevices,
      removedSelf: res.newState.groupActiveState.kind === "removedFromGroup",
      authenticatedData,
    }
  }

  private async privateSender(state: ClientState, pm: import("ts-mls").PrivateMessage): Promise<string | undefined> {
    let secret = state.keySchedule.senderDataSecret
    let tree = state.ratchetTree
    if (pm.epoch < state.groupContext.epoch) {
      const old = state.historicalReceiverData.get(pm.epoch)
      if (!old) throw new MlsError(`epoch ${pm.epoch} is too old to read`)
      secret = old.senderDataSecret
      tree = old.ratchetTree
    }
    const sd = await decryptSenderData(pm, secret, this.cs)
    if (!sd) throw new MlsError("cannot decrypt the sender data")
    const node = tree[sd.leafIndex * 2]
    return node?.nodeType === "leaf" ? deviceIdOf(node.leaf.credential) : undefined
  }
}

function pendingRemovals(state: ClientState): string[] {
  const out: string[] = []
  for (const p of Object.values(state.unappliedProposals)) {
    if (p.proposal.proposalType !== "remove") continue
    const d = leafDevice(state, p.proposal.remove.removed)
    if (d && !out.includes(d)) out.push(d)
  }
  return out
}

function leafDevice(state: ClientState, leafIndex: number): string | undefined {
  const node = state.ratchetTree[leafIndex * 2]
  return node?.nodeType === "leaf" ? deviceIdOf(node.leaf.credential) : undefined
}

function membersOf(state: ClientState): GroupMember[] {
  const out: GroupMember[] = []
  for (let i = 0; i < state.ratchetTree.length; i += 2) {
    const n = state.ratchetTree[i]
    if (n?.nodeType !== "leaf") continue
    const d = deviceIdOf(n.leaf.credential)
    if (d) out.push({ leafIndex: i / 2, deviceId: d, signatureKey: n.leaf.signaturePublicKey })
  }
  return out
}
