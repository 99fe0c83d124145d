// History verification (docs/verification.md): each group's events form a
// hash chain computed by the server; this client follows the chain of every
// group as it receives events, and checks that the chain head another
// member's application message carries (in its MLS authenticated data) is
// on its own chain. A server that withholds, reorders or forks history
// between members is detected by the next event or message that crosses it.
import { sha256 } from "@noble/hashes/sha2.js"
import { equal, fromHex, toHex, utf8 } from "./bytes.js"
import type { FeedEvent } from "./feed.js"

const LABEL = utf8.encode("sovereign event chain v1")

/** The prev_hash of a group's first chained event: 32 zero bytes. */
export const CHAIN_GENESIS = new Uint8Array(32)

/** What a history check found (the `history_mismatch` event). */
export interface HistoryMismatch {
  kind: "history_mismatch"
  groupId: Uint8Array
  /**
   * gap: an event's prev_hash is not the last hash this device saw (an
   * event was withheld from it); reorder: an event arrived below the chain
   * head, or links to an older hash; bad_hash: an event's hash does not
   * match its content; fork: a member's message names a chain head at a
   * seq where this device holds a different hash; withheld: a member's
   * message names a chain head at a seq this device never received.
   */
  reason: "gap" | "reorder" | "bad_hash" | "fork" | "withheld"
  /** The seq of the event (or the member's claimed head) concerned. */
  seq: number
  /** The sending device of the message whose head did not match (fork, withheld). */
  senderDeviceId?: string
  /** What this device expected (its previous hash, or its hash at seq). */
  expected?: Uint8Array
  /** What it found. */
  found?: Uint8Array
}

/** The chain hash of one event, as the server computes it. */
export function chainHash(prev: Uint8Array, ev: FeedEvent): Uint8Array {
  const gid = ev.groupId ?? new Uint8Array()
  const kind = utf8.encode(ev.kind)
  const sender = utf8.encode(ev.senderDeviceId ?? "")
  const n = LABEL.length + 1 + 2 + gid.length + 32 + 8 + 1 + kind.length + 9 + 2 + sender.length + 4 + ev.payload.length
  const b = new Uint8Array(n)
  const v = new DataView(b.buffer)
  let o = 0
  b.set(LABEL, o), (o += LABEL.length)
  b[o++] = 0
  v.setUint16(o, gid.length), (o += 2)
  b.set(gid, o), (o += gid.length)
  b.set(prev, o), (o += 32)
  v.setBigUint64(o, BigInt(ev.seq)), (o += 8)
  b[o++] = kind.length
  b.set(kind, o), (o += kind.length)
  b[o++] = ev.epoch === undefined ? 0 : 1
  v.setBigUint64(o, BigInt(ev.epoch ?? 0)), (o += 8)
  v.setUint16(o, sender.length), (o += 2)
  b.set(sender, o), (o += sender.length)
  v.setUint32(o, ev.payload.length), (o += 4)
  b.set(ev.payload, o)
  return sha256(b)
}

/** Whether an event belongs to its group's chain (a group event every member receives alike). */
export function isChained(ev: FeedEvent): boolean {
  return !!ev.groupId && !ev.recipientDeviceId && !!ev.hash && !!ev.prevHash
}

/** A chain head as carried in an application message's authenticated data. */
export interface ChainHead {
  seq: number
  hash: Uint8Array
}

const HEAD_VERSION = 1

/** Encodes a head for the MLS authenticated data: 0x01 ‖ u64 seq ‖ hash (41 bytes). */
export function encodeHead(h: ChainHead | undefined): Uint8Array {
  if (!h) return new Uint8Array()
  const b = new Uint8Array(41)
  b[0] = HEAD_VERSION
  new DataView(b.buffer).setBigUint64(1, BigInt(h.seq))
  b.set(h.hash, 9)
  return b
}

/** Decodes a head from authenticated data; undefined when absent or of another version. */
export function decodeHead(b: Uint8Array): ChainHead | undefined {
  if (b.length !== 41 || b[0] !== HEAD_VERSION) return undefined
  return { seq: Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(1)), hash: b.slice(9) }
}

/** How many hashes per group a chain remembers (to check members' heads). */
const REMEMBER = 4096
/** How many of the latest hashes per group a snapshot keeps across restarts. */
export const PERSISTED_HASHES = 32

/**
 * What a device keeps of one group's chain across restarts (ClientStore
 * putChain): the latest chained events it verified, oldest first; the last
 * one is its head.
 */
export interface ChainSnapshot {
  seen: ChainHead[]
}

/** One group's chain as this device has seen it. */
class GroupChain {
  head?: ChainHead
  /** seq -> hash (hex) of the chained events seen, the last REMEMBER. */
  readonly seen = new Map<number, string>()
  readonly hashes = new Set<string>()
  /** Members' heads ahead of ours, checked once we reach them. */
  pending: { head: ChainHead; sender?: string }[] = []
  /** The first seq of this chain (heads below it cannot be checked). */
  first = 0
}

/**
 * The history verifier: the chains of every group this device follows. It
 * is fed every feed event (in the order received) and every decrypted
 * application message's authenticated data, and returns what it found.
 */
export class HistoryVerifier {
  private readonly chains = new Map<string, GroupChain>()

  private chain(groupId: Uint8Array): GroupChain {
    const k = toHex(groupId)
    let c = this.chains.get(k)
    if (!c) this.chains.set(k, (c = new GroupChain()))
    return c
  }

  /**
   * The latest verified part of a group's chain, to persist after each
   * event: after a restart, restore() makes the next event checked against
   * it instead of trusted.
   */
  snapshot(groupId: Uint8Array): ChainSnapshot | undefined {
    const c = this.chains.get(toHex(groupId))
    if (!c?.head) return undefined
    // seen is in arrival order, which is seq order but for reordered events.
    const entries = [...c.seen.entries()].slice(-PERSISTED_HASHES).sort((a, b) => a[0] - b[0])
    return { seen: entries.map(([seq, hex]) => ({ seq, hash: fromHex(hex) })) }
  }

  /**
   * Restores a group's chain from a snapshot (at start, before any event).
   * Members' heads older than the snapshot's first event cannot be checked.
   */
  restore(groupId: Uint8Array, s: ChainSnapshot): void {
    if (s.seen.length === 0) return
    const c = new GroupChain()
    for (const h of [...s.seen].sort((a, b) => a.seq - b.seq)) {
      c.seen.set(h.seq, toHex(h.hash))
      c.hashes.add(toHex(h.hash))
      c.head = { seq: h.seq, hash: h.hash }
    }
    c.first = s.seen.reduce((m, h) => Math.min(m, h.seq), Number.MAX_SAFE_INTEGER)
    this.chains.set(toHex(groupId), c)
  }

  /** Forgets a group's chain (the device left it, or rejoined it afresh). */
  forget(groupId: Uint8Array): void {
    this.chains.delete(toHex(groupId))
  }

  /** This device's head of a group's chain (what its messages carry). */
  head(groupId: Uint8Array): ChainHead | undefined {
    return this.chains.get(toHex(groupId))?.head
  }

  /**
   * Checks one received event against its group's chain and advances it.
   * The first chained event of a group is trusted (genesis, or where this
   * device joined).
   */
  observe(ev: FeedEvent): HistoryMismatch[] {
    if (!isChained(ev)) return []
    const gid = ev.groupId!
    const c = this.chain(gid)
    const hex = toHex(ev.hash!)
    const out: HistoryMismatch[] = []
    if (c.hashes.has(hex)) return out // a duplicate (replayed after a reconnect)
    if (!equal(chainHash(ev.prevHash!, ev), ev.hash!)) {
      return [{ kind: "history_mismatch", groupId: gid, reason: "bad_hash", seq: ev.seq, found: ev.hash }]
    }
    if (c.head) {
      if (ev.seq <= c.head.seq) {
        out.push({ kind: "history_mismatch", groupId: gid, reason: "reorder", seq: ev.seq, expected: c.head.hash, found: ev.prevHash })
      } else if (!equal(ev.prevHash!, c.head.hash)) {
        const reason = c.hashes.has(toHex(ev.prevHash!)) ? "reorder" : "gap"
        out.push({ kind: "history_mismatch", groupId: gid, reason, seq: ev.seq, expected: c.head.hash, found: ev.prevHash })
      }
    } else {
      c.first = ev.seq
    }
    if (!c.head || ev.seq > c.head.seq) c.head = { seq: ev.seq, hash: ev.hash! }
    c.seen.set(ev.seq, hex)
    c.hashes.add(hex)
    if (c.seen.size > REMEMBER) {
      const [oldest, h] = c.seen.entries().next().value as [number, string]
      c.seen.delete(oldest)
      c.hashes.delete(h)
      c.first = Math.max(c.first, oldest + 1)
    }
    // Members' heads we have now caught up with.
    const due = c.pending.filter((p) => p.head.seq <= c.head!.seq)
    c.pending = c.pending.filter((p) => p.head.seq > c.head!.seq)
    for (const p of due) out.push(...this.checkHead(gid, c, p.head, p.sender))
    return out
  }

  /**
   * Checks the chain head another member's application message carried: it
   * must be a hash this device saw at that seq, or (when this device lags)
   * one it will see there.
   */
  memberHead(groupId: Uint8Array, head: ChainHead | undefined, sender?: string): HistoryMismatch[] {
    if (!head) return []
    const c = this.chain(groupId)
    if (!c.head || head.seq > c.head.seq) {
      c.pending.push({ head, sender })
      if (c.pending.length > REMEMBER) c.pending.shift()
      return []
    }
    return this.checkHead(groupId, c, head, sender)
  }

  private checkHead(groupId: Uint8Array, c: GroupChain, head: ChainHead, sender?: string): HistoryMismatch[] {
    if (head.seq < c.first) return [] // before this device's chain began: nothing to compare
    const mine = c.seen.get(head.seq)
    if (mine === toHex(head.hash)) return []
    return [{ kind: "history_mismatch", groupId, reason: mine ? "fork" : "withheld", seq: head.seq, senderDeviceId: sender, found: head.hash }]
  }
}
