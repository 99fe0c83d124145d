// Safety codes (issue #18 item 3; docs/verification.md "Safety codes"): a
// short code per conversation and epoch, derived from the MLS epoch
// authenticator (RFC 9420 §8.7), that two people compare in person or by
// QR code. Every member at the same epoch of the same group derives the
// same code; members of two different groups (a server that split a group,
// or sits in the middle of two groups that share an id) derive different
// codes, because their epoch authenticators differ.
import { sha256 } from "@noble/hashes/sha2.js"
import type { ClientState } from "ts-mls"
import { equal, fromBase64url, toBase64url, utf8 } from "./bytes.js"

const LABEL = utf8.encode("sovereign safety code v1")
/** The QR payload's prefix and version. */
export const SAFETY_QR_PREFIX = "sovereign-safety:1:"
/** Decimal digits of the code people compare by eye (3 groups of 4). */
export const SAFETY_CODE_DIGITS = 12

/** A conversation's safety code at one epoch. */
export interface SafetyCode {
  /** 12 digits in 3 groups of 4, e.g. "0412 9931 2270". */
  code: string
  /** The MLS epoch the code is for: it changes with every commit. */
  epoch: number
  groupId: Uint8Array
  /**
   * The full 32-byte digest the code is cut from; the QR payload carries it
   * whole, so a scan compares 256 bits, not the 40 of the digits.
   */
  digest: Uint8Array
  /** The text to put in a QR code: sovereign-safety:1:<group id>:<epoch>:<digest> (base64url). */
  qr: string
}

/**
 * The safety digest: SHA-256("sovereign safety code v1" ‖ 0x00
 * ‖ u16(len(group_id)) ‖ group_id ‖ u64(epoch) ‖ u8(len(auth)) ‖ epoch_authenticator).
 * The epoch authenticator is a secret of the epoch's key schedule; the
 * digest reveals nothing usable about it (and it keys nothing else).
 */
export function safetyDigest(groupId: Uint8Array, epoch: bigint | number, epochAuthenticator: Uint8Array): Uint8Array {
  if (groupId.length > 0xffff) throw new Error("group id too long")
  if (epochAuthenticator.length > 0xff) throw new Error("epoch authenticator too long")
  const b = new Uint8Array(LABEL.length + 1 + 2 + groupId.length + 8 + 1 + epochAuthenticator.length)
  const v = new DataView(b.buffer)
  let o = 0
  b.set(LABEL, o), (o += LABEL.length)
  b[o++] = 0
  v.setUint16(o, groupId.length), (o += 2)
  b.set(groupId, o), (o += groupId.length)
  v.setBigUint64(o, BigInt(epoch)), (o += 8)
  b[o++] = epochAuthenticator.length
  b.set(epochAuthenticator, o)
  return sha256(b)
}

/**
 * The digits of a digest: its first 8 bytes as a big-endian integer modulo
 * 10^12 (the bias of the reduction is below 10^-7), in 3 groups of 4.
 */
export function safetyDigits(digest: Uint8Array): string {
  const n = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0) % 10n ** BigInt(SAFETY_CODE_DIGITS)
  const s = n.toString().padStart(SAFETY_CODE_DIGITS, "0")
  return s.match(/.{4}/g)!.join(" ")
}

/** The safety code of an MLS group state (its current epoch). */
export function safetyCodeOf(state: ClientState): SafetyCode {
  const groupId = state.groupContext.groupId
  const epoch = state.groupContext.epoch
  const digest = safetyDigest(groupId, epoch, state.keySchedule.epochAuthenticator)
  return {
    code: safetyDigits(digest),
    epoch: Number(epoch),
    groupId,
    digest,
    qr: SAFETY_QR_PREFIX + toBase64url(groupId) + ":" + epoch.toString() + ":" + toBase64url(digest),
  }
}

/** A QR payload read back. */
export interface SafetyQr {
  groupId: Uint8Array
  epoch: number
  digest: Uint8Array
}

/** Parses a scanned QR payload; undefined when it is not a Sovereign safety code. */
export function parseSafetyQr(text: string): SafetyQr | undefined {
  if (!text.startsWith(SAFETY_QR_PREFIX)) return undefined
  const parts = text.slice(SAFETY_QR_PREFIX.length).split(":")
  if (parts.length !== 3 || !/^[0-9]{1,16}$/.test(parts[1]!)) return undefined
  try {
    const groupId = fromBase64url(parts[0]!)
    const digest = fromBase64url(parts[2]!)
    if (digest.length !== 32) return undefined
    return { groupId, epoch: Number(parts[1]), digest }
  } catch {
    return undefined
  }
}

/** How a scanned payload compares with this device's code. */
export type SafetyComparison = "match" | "mismatch" | "other_group" | "other_epoch" | "unreadable"

/**
 * Compares a scanned QR payload with this device's code: match only when
 * group, epoch and the whole 32-byte digest agree. other_epoch: one of the
 * two devices has not processed the latest commit yet (compare again).
 */
export function compareSafetyQr(mine: SafetyCode, scanned: string): SafetyComparison {
  const q = parseSafetyQr(scanned)
  if (!q) return "unreadable"
  if (!equal(q.groupId, mine.groupId)) return "other_group"
  if (q.epoch !== mine.epoch) return "other_epoch"
  return equal(q.digest, mine.digest) ? "match" : "mismatch"
}
