// A KeyValueStore on the local file system for Node tools and tests: one file
// per key, written to a temporary name, fsynced and renamed, so a crash
// leaves the old or the new value, never a torn one. Not for browsers.
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises"
import { join } from "node:path"
import type { KeyValueStore } from "./storage.js"

export class FileKeyValueStore implements KeyValueStore {
  constructor(private readonly dir: string) {}

  private path(key: string): string {
    // Keys are ASCII; encode them so "/" and friends are safe file names.
    return join(this.dir, encodeURIComponent(key))
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path(key)))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
      throw e
    }
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const final = this.path(key)
    const tmp = `${final}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    const fh = await open(tmp, "w", 0o600)
    try {
      await fh.writeFile(value)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, final)
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true })
  }

  async keys(prefix: string): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return []
      throw e
    }
    return names
      .filter((n) => !n.endsWith(".tmp"))
      .map((n) => decodeURIComponent(n))
      .filter((k) => k.startsWith(prefix))
  }
}
