// The package as app developers get it: `npm pack` yields a tarball that a
// fresh project installs from the npm registry's dependencies and uses in
// Node against the real binary (sign-up with the software authenticator, key
// packages, a group, a send, SSE delivery), whose types check, and that
// esbuild bundles for the browser with no Node built-in and no test-only
// code. The fixtures live in test/package/ (not compiled with the SDK).
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile, copyFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { ServerProcess } from "./helpers/server.js"

const run = promisify(execFile)
const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..") // clients/ts
const fixtures = join(pkgDir, "test", "package")
const repoRoot = resolve(pkgDir, "../..")

let work: string // temp dir: the tarball and the fresh project
let project: string
let tarball: string
let packed: { files: { path: string }[]; size: number; unpackedSize: number; name: string; version: string }

before(async () => {
  work = await mkdtemp(join(tmpdir(), "sovereign-pack-"))
  // dist/ is built already (make test-clients builds before testing), so
  // pack without running `prepare` again under the feet of other test files.
  const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: pkgDir, maxBuffer: 16 << 20 })
  packed = (JSON.parse(stdout) as (typeof packed & { filename: string })[])[0]!
  tarball = join(work, (packed as unknown as { filename: string }).filename)
  project = join(work, "app")
  await run("mkdir", ["-p", project])
  await writeFile(join(project, "package.json"), JSON.stringify({ name: "fresh-app", version: "0.0.0", private: true, type: "module" }, null, 2))
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball], { cwd: project, maxBuffer: 16 << 20 })
  for (const f of ["smoke.mjs", "browser.mjs", "types.ts"]) await copyFile(join(fixtures, f), join(project, f))
})

after(async () => {
  if (work) await rm(work, { recursive: true, force: true })
})

test("npm pack: name, semver tied to the API version, only the built package, its sources, LICENSE and README", async () => {
  const pkg = JSON.parse(await readFile(join(pkgDir, "package.json"), "utf8")) as Record<string, unknown>
  assert.equal(packed.name, "@sovereign-im/client")
  assert.equal(pkg.private, undefined, "publishable")
  assert.equal(pkg.license, "Apache-2.0")
  assert.equal(pkg.type, "module")
  const spec = await readFile(join(repoRoot, "openapi.yaml"), "utf8")
  const apiVersion = /^info:\n(?:(?:  .*)?\n)*?  version: "?([0-9.]+)"?$/m.exec(spec)?.[1]
  assert.ok(apiVersion, "openapi.yaml has info.version")
  const [maj, min] = apiVersion.split(".")
  assert.match(packed.version, new RegExp(`^${maj}\\.${min}\\.\\d+$`), `package ${packed.version} follows API ${apiVersion}`)
  const { API_VERSION } = await import("../src/version.js")
  assert.equal(API_VERSION, apiVersion, "src/version.ts names the API version of openapi.yaml")

  const paths = packed.files.map((f) => f.path).sort()
  for (const want of ["LICENSE", "README.md", "package.json", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/node.js", "dist/src/testing.js", "dist/src/schema.d.ts", "src/client.ts"]) {
    assert.ok(paths.includes(want), `${want} is packed`)
  }
  for (const p of paths) {
    assert.doesNotMatch(p, /^(test|dist\/test|node_modules)\/|tsconfig|\.tgz$/, `${p} must not be packed`)
  }
  assert.match(await readFile(join(pkgDir, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/)
  console.log(`npm pack: ${packed.files.length} files, tarball ${packed.size} B, unpacked ${packed.unpackedSize} B`)
})

test("a fresh project installs the tarball and runs the smoke flow in Node against the real binary", { timeout: 120_000 }, async () => {
  const srv = await ServerProcess.start()
  const storeDir = join(work, "bob-store")
  try {
    assert.ok(srv.adminInvite)
    const { stdout } = await run("node", ["smoke.mjs"], {
      cwd: project,
      timeout: 90_000,
      env: {
        ...process.env,
        SOVEREIGN_URL: srv.url,
        SOVEREIGN_ORIGIN: srv.origin,
        INVITE_ALICE: srv.adminInvite,
        INVITE_BOB: await srv.invite(),
        STORE_DIR: storeDir,
      },
    })
    const out = JSON.parse(stdout.trim().split("\n").pop()!) as {
      uploaded: number[]; added: string[]; bobDevice: string; aliceDevice: string; receiptSeq: number
      msg: { text: string; from: string; seq: number }; transport: string
    }
    assert.deepEqual(out.uploaded, [11, 11], "10 key packages + a last-resort one each")
    assert.deepEqual(out.added, [out.bobDevice])
    assert.equal(out.msg.text, "hello from a packed tarball")
    assert.equal(out.msg.from, out.aliceDevice, "sender authenticated from the MLS leaf")
    assert.equal(out.msg.seq, out.receiptSeq)
    assert.equal(out.transport, "sse")
  } finally {
    await srv.cleanup()
  }
})

test("the installed package's types check (NodeNext and Bundler resolution)", { timeout: 240_000 }, async () => {
  const tsc = join(pkgDir, "node_modules", "typescript", "bin", "tsc")
  for (const [module, resolution] of [["NodeNext", "NodeNext"], ["ESNext", "Bundler"]] as const) {
    await run("node", [tsc, "--noEmit", "--strict", "--skipLibCheck", "--target", "ES2022", "--lib", "ES2022,DOM",
      "--module", module, "--moduleResolution", resolution, "--types", "node", "--typeRoots", join(pkgDir, "node_modules", "@types"), "types.ts"],
    { cwd: project }).catch((e: { stdout?: string; stderr?: string }) => {
      assert.fail(`tsc (${resolution}) failed:\n${e.stdout}${e.stderr}`)
    })
  }
})

test("esbuild bundles the main entry for the browser: no Node built-in, no test-only code", async () => {
  const esbuild = await import("esbuild")
  const r = await esbuild.build({
    absWorkingDir: project,
    entryPoints: ["browser.mjs"],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    minify: true,
    logLevel: "silent",
  })
  assert.deepEqual(r.errors, [])
  const inputs = Object.keys(r.metafile.inputs)
  assert.ok(inputs.some((i) => i.includes("@sovereign-im/client/dist/src/client.js")), "the bundle holds the SDK")
  assert.ok(inputs.some((i) => i.includes("ts-mls")), "and ts-mls")
  for (const i of inputs) {
    assert.doesNotMatch(i, /^node:|software-authenticator|cbor\.js|node-store/, `${i} must not be in a browser bundle`)
  }
  const js = r.outputFiles[0]!.text
  assert.doesNotMatch(js, /\brequire\(|from"node:|"node:[a-z]/, "no Node module reference in the output")
  console.log(`browser bundle: ${js.length} B minified, ${inputs.length} inputs`)

  // The check can fail: the Node-only entry does not resolve for a browser.
  await assert.rejects(
    esbuild.build({
      absWorkingDir: project, stdin: { contents: 'export * from "@sovereign-im/client/node"', resolveDir: project },
      bundle: true, platform: "browser", format: "esm", write: false, logLevel: "silent",
    }),
    /not exported|Could not resolve/,
  )
})
