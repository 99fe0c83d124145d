// Safety codes in the app (docs/verification.md "Safety codes"): the SDK
// computes a conversation's code at this device's epoch; this module keeps
// "marked as verified at epoch N" per conversation in the sealed local store
// (the SDK's key/value store, cleared with the rest of this browser's
// data), and tells whether a mark still holds: a commit changes the code,
// so a mark is for one epoch, and the note says whether the members changed.
import { compareSafetyQr, fromBase64url, toHex, utf8, type SafetyCode, type SafetyComparison, type SovereignClient } from "@sovereign-im/client"

/** What "verified" remembers: the epoch, the digest compared and the member devices then. */
export interface SafetyMark {
  epoch: number
  digest: string
  members: string[]
  at: number
}

/** The verification state of a conversation now. */
export type SafetyState =
  | { kind: "unverified" }
  | { kind: "verified"; mark: SafetyMark }
  /** Verified at an earlier epoch; the code changed since (membersChanged: a device was added or removed). */
  | { kind: "changed"; mark: SafetyMark; membersChanged: boolean }

export interface SafetyView {
  code: SafetyCode
  members: string[]
  state: SafetyState
}

const key = (conv: string) => "app/safety/" + conv

export class Safety {
  constructor(private readonly client: () => SovereignClient) {}

  private async members(gid: Uint8Array): Promise<string[]> {
    return (await this.client().mls.members(gid)).map((m) => m.deviceId).sort()
  }

  private async mark(conv: string): Promise<SafetyMark | undefined> {
    const b = await this.client().store.kv.get(key(conv))
    if (!b) return undefined
    try {
      return JSON.parse(utf8.decode(b)) as SafetyMark
    } catch {
      return undefined
    }
  }

  /** The code, the member devices and the verification state of a conversation. */
  async view(conv: string): Promise<SafetyView> {
    const gid = fromBase64url(conv)
    const code = await this.client().safetyCode(gid)
    const members = await this.members(gid)
    const mark = await this.mark(conv)
    let state: SafetyState = { kind: "unverified" }
    if (mark && mark.epoch === code.epoch && mark.digest === toHex(code.digest)) state = { kind: "verified", mark }
    else if (mark) state = { kind: "changed", mark, membersChanged: mark.members.join(",") !== members.join(",") }
    return { code, members, state }
  }

  /** Marks the conversation verified at the code's epoch (after comparing by eye or by scan). */
  async markVerified(conv: string, v: SafetyView): Promise<void> {
    const mark: SafetyMark = { epoch: v.code.epoch, digest: toHex(v.code.digest), members: v.members, at: Date.now() }
    await this.client().store.kv.put(key(conv), utf8.encode(JSON.stringify(mark)))
  }

  async clear(conv: string): Promise<void> {
    await this.client().store.kv.delete(key(conv))
  }

  /** Compares a scanned QR payload with this device's code. */
  compare(v: SafetyView, scanned: string): SafetyComparison {
    return compareSafetyQr(v.code, scanned)
  }
}
