// Helpers of SovereignClient: its lock, the unwrapping of API results into
// ApiErrors, and the reading of notices and key packages.
import { ApiError, type Problem } from "./errors.js"
import { parseKeyPackage, DEFAULT_SUITE } from "./mls.js"
import { ciphersuites } from "ts-mls"
import type { NewDeviceNotice } from "./client-types.js"

/** A simple FIFO async mutex. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve()
  async run<T>(f: () => Promise<T>): Promise<T> {
    const prev = this.tail
    let release!: () => void
    this.tail = new Promise<void>((r) => (release = r))
    await prev
    try {
      return await f()
    } finally {
      release()
    }
  }
}

export function problemOf(error: unknown, response: Response, operation: string): ApiError {
  const p = (typeof error === "object" && error !== null ? error : { detail: String(error) }) as Problem
  if (p.retry_after === undefined) {
    const ra = Number(response.headers.get("Retry-After"))
    if (Number.isFinite(ra) && ra > 0) p.retry_after = ra
  }
  return new ApiError(response.status, p, operation)
}

/** Unwraps an openapi-fetch result: data on 2xx, ApiError otherwise. */
export function ok<T>(r: { data?: T; error?: unknown; response: Response }, operation: string): T {
  if (r.response.ok && r.data !== undefined) return r.data
  if (r.response.ok) return undefined as T
  throw problemOf(r.error, r.response, operation)
}

export function suiteId(name: string): number {
  return (ciphersuites as Record<string, number>)[name]!
}

/** The device a `remove_device` notice asks the members to remove, if it is one. */
export function removedDeviceOf(n: Record<string, unknown>): string | undefined {
  return n.type === "remove_device" && typeof n.device_id === "string" && n.device_id !== "" ? n.device_id : undefined
}

export function isKeyPackagesLow(n: Record<string, unknown>): boolean {
  return typeof n.type === "string" && n.type === "key_packages_low"
}

/** The SDK event of a new_device notice; a location is kept only when well-formed. */
export function newDeviceNotice(n: Record<string, unknown>, deviceId: string): NewDeviceNotice {
  const out: NewDeviceNotice = { kind: "new_device", deviceId, deviceName: String(n.device_name ?? ""), createdAt: String(n.created_at ?? "") }
  const loc = n.location as Record<string, unknown> | undefined
  if (loc && typeof loc === "object" && typeof loc.country === "string" && /^[A-Z]{2}$/.test(loc.country)) {
    out.location = typeof loc.city === "string" && loc.city !== "" ? { country: loc.country, city: loc.city } : { country: loc.country }
  }
  return out
}

export function parseDevice(kp: Uint8Array, suite: string): string {
  return parseKeyPackage(kp, suite as typeof DEFAULT_SUITE).deviceId
}
