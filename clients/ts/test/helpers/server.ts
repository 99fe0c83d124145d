// Starts the real sovereign binary on a fresh data directory for end-to-end
// tests. The binary comes from $SOVEREIGN_BIN (make test-clients sets it) or
// is built with `go build` into a temporary directory.
import { spawn, execFile, type ChildProcess } from "node:child_process"
import { mkdtemp, rm, readFile, readdir } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve, dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const run = promisify(execFile)
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../..")

let built: Promise<string> | undefined

/** The sovereign binary: $SOVEREIGN_BIN or a fresh `go build` of ./cmd/sovereign. */
export function binary(): Promise<string> {
  if (process.env.SOVEREIGN_BIN) return Promise.resolve(process.env.SOVEREIGN_BIN)
  built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "sovereign-bin-"))
    const out = join(dir, "sovereign")
    await run("go", ["build", "-o", out, "./cmd/sovereign"], { cwd: repoRoot })
    return out
  })()
  return built
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once("error", rej)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port
      s.close(() => res(port))
    })
  })
}

export interface LogLine {
  level?: string
  msg?: string
  [k: string]: unknown
}

export class ServerProcess {
  readonly logs: LogLine[] = []
  adminInvite?: string
  private proc?: ChildProcess
  private exited?: Promise<number | null>

  private constructor(
    readonly bin: string,
    readonly dataDir: string,
    readonly port: number,
    readonly extraArgs: string[],
  ) {}

  /** The URL clients use (127.0.0.1 avoids IPv6 resolution of localhost). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }
  /** The WebAuthn origin (an RP ID must be a domain, so localhost). */
  get origin(): string {
    return `http://localhost:${this.port}`
  }
  get dbPath(): string {
    return join(this.dataDir, "sovereign.db")
  }

  static async start(extraArgs: string[] = []): Promise<ServerProcess> {
    const bin = await binary()
    const dataDir = await mkdtemp(join(tmpdir(), "sovereign-e2e-"))
    const s = new ServerProcess(bin, dataDir, await freePort(), extraArgs)
    await s.launch()
    return s
  }

  args(): string[] {
    return [
      "serve",
      "--data-dir", this.dataDir,
      "--listen", `127.0.0.1:${this.port}`,
      "--rp-id", "localhost",
      "--rp-origins", this.origin,
      "--log-format", "json",
      // Every test client signs in from 127.0.0.1: lift the per-IP ceremony limit.
      "--auth-per-minute", "10000",
      "--auth-burst", "10000",
      ...this.extraArgs,
    ]
  }

  /** Starts the process and waits until it listens. */
  async launch(): Promise<void> {
    const proc = spawn(this.bin, this.args(), { stdio: ["ignore", "pipe", "pipe"] })
    this.proc = proc
    this.exited = new Promise((r) => proc.once("exit", (code) => r(code)))
    let buf = ""
    let resolveReady!: () => void
    let rejectReady!: (e: Error) => void
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res
      rejectReady = rej
    })
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("utf8")
      let i
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        let l: LogLine
        try {
          l = JSON.parse(line) as LogLine
        } catch {
          l = { msg: line }
        }
        this.logs.push(l)
        if (typeof l.invite_code === "string") this.adminInvite = l.invite_code
        if (l.msg === "sovereign listening") resolveReady()
      }
    }
    proc.stdout!.on("data", onData)
    proc.stderr!.on("data", onData)
    void this.exited.then((code) => rejectReady(new Error(`sovereign exited with ${code}:\n${this.logs.map((l) => JSON.stringify(l)).join("\n")}`)))
    const timer = setTimeout(() => rejectReady(new Error("sovereign did not start within 20 s")), 20_000)
    try {
      await ready
    } finally {
      clearTimeout(timer)
    }
  }

  /** Creates an invite with the CLI against the same data directory (the server keeps running). */
  async invite(opts: { uses?: number; admin?: boolean } = {}): Promise<string> {
    const args = ["invite", "--data-dir", this.dataDir, "--rp-id", "localhost", "--rp-origins", this.origin, "--uses", String(opts.uses ?? 1)]
    if (opts.admin) args.push("--admin")
    const { stdout } = await run(this.bin, args)
    const m = /Invite code:\s*(\S+)/.exec(stdout)
    if (!m) throw new Error(`no invite code in: ${stdout}`)
    return m[1]!
  }

  /** SIGTERM, then wait for a clean exit. */
  async stop(): Promise<number | null> {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? null
    this.proc.kill("SIGTERM")
    const code = await this.exited
    return code ?? null
  }

  /** Every file of the data directory that holds database bytes (db, -wal, -shm, journals). */
  async databaseFiles(): Promise<{ name: string; bytes: Buffer }[]> {
    const out = []
    for (const n of await readdir(this.dataDir)) {
      if (n.startsWith("sovereign.db")) out.push({ name: n, bytes: await readFile(join(this.dataDir, n)) })
    }
    return out
  }

  async cleanup(): Promise<void> {
    await this.stop()
    await rm(this.dataDir, { recursive: true, force: true })
  }
}
