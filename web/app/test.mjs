// Runs the app's unit tests: esbuild bundles test/*.test.ts for Node into
// test-dist/, then node --test runs them.
import { build } from "esbuild"
import { spawnSync } from "node:child_process"
import { readdirSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, "test-dist")
rmSync(out, { recursive: true, force: true })
const files = readdirSync(join(here, "test")).filter((f) => f.endsWith(".test.ts"))
await build({
  entryPoints: files.map((f) => join(here, "test", f)),
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  packages: "bundle",
  logLevel: "warning",
})
const r = spawnSync(process.execPath, ["--test", ...files.map((f) => join(out, f.replace(/\.ts$/, ".mjs")))], { stdio: "inherit" })
process.exit(r.status ?? 1)
