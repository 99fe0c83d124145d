// Builds the member web app into ../dist/app, which the binary embeds:
// esbuild bundles src/main.tsx (Preact, signals, Dexie,
// @simplewebauthn/browser and the project's SDK with ts-mls) and the
// service worker; static files are copied; the PNG icons the web manifest
// needs are drawn here from the same shape as icon.svg (no image tool
// needed at build time). It also bundles the admin console's passkey
// helper (@simplewebauthn/browser) into ../dist/admin, after web/build.mjs
// copied the console there.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { deflateSync, gzipSync } from "node:zlib"

const here = dirname(fileURLToPath(import.meta.url))

// Type-check first (esbuild only strips types): a type error fails the build.
for (const project of ["tsconfig.json", "tsconfig.sw.json"]) {
  try {
    execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", join(here, project)], { stdio: "inherit" })
  } catch {
    console.error(`web/app: type errors (${project})`)
    process.exit(1)
  }
}
const out = join(here, "..", "dist", "app")
const assets = join(out, "assets")
rmSync(out, { recursive: true, force: true })
mkdirSync(assets, { recursive: true })

const common = {
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  platform: "browser",
  legalComments: "linked",
  logLevel: "warning",
  jsx: "automatic",
  jsxImportSource: "preact",
}
await build({ ...common, entryPoints: [join(here, "src", "main.tsx")], outfile: join(assets, "app.js"), metafile: false })

// The shell version changes whenever a shell file does, so a new binary's
// service worker replaces the old cache.
const version = createHash("sha256").update(readFileSync(join(assets, "app.js"))).update(readFileSync(join(here, "static", "app.css"))).digest("hex").slice(0, 16)
await build({ ...common, entryPoints: [join(here, "src", "sw.ts")], outfile: join(out, "sw.js"), format: "iife", define: { SHELL_VERSION: JSON.stringify(version) } })

for (const f of readdirSync(join(here, "static"))) {
  const dest = f === "index.html" || f === "manifest.webmanifest" ? join(out, f) : join(assets, f)
  cpSync(join(here, "static", f), dest)
}
for (const size of [192, 512]) writeFileSync(join(assets, `icon-${size}.png`), iconPNG(size))

// The admin console's passkey calls go through @simplewebauthn/browser too.
const adminOut = join(here, "..", "dist", "admin")
if (existsSync(adminOut)) {
  await build({ ...common, entryPoints: [join(here, "..", "admin", "passkeys.mjs")], outfile: join(adminOut, "passkeys.js"), format: "iife", nodePaths: [join(here, "node_modules")] })
}

const js = readFileSync(join(assets, "app.js"))
console.log(`web/app: built to dist/app (app.js ${(js.length / 1024).toFixed(0)} KB, gzipped ${(gzipSync(js, { level: 9 }).length / 1024).toFixed(1)} KB)`)

// --- PNG icon: the bubble of icon.svg, drawn with 4x4 supersampling ------------

function iconPNG(size) {
  const s = size / 32
  const inRoundRect = (x, y, x0, y0, x1, y1, r) => {
    const cx = Math.min(Math.max(x, x0 + r), x1 - r)
    const cy = Math.min(Math.max(y, y0 + r), y1 - r)
    return x >= x0 && x <= x1 && y >= y0 && y <= y1 && (x - cx) ** 2 + (y - cy) ** 2 <= r * r
  }
  const inTail = (x, y) => y >= 21.9 && y <= 26 && x >= 10 && x <= 15 && x - 10 <= (26 - y) * 1.25 // from (10,22)-(15,22) to (10,26)
  const dots = [12, 16, 20]
  const px = Buffer.alloc(size * (size * 4 + 1))
  const blue = [0x25, 0x63, 0xeb]
  for (let y = 0; y < size; y++) {
    px[y * (size * 4 + 1)] = 0
    for (let x = 0; x < size; x++) {
      let bg = 0, white = 0
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) {
        const u = (x + (sx + 0.5) / 4) / s, v = (y + (sy + 0.5) / 4) / s
        if (!inRoundRect(u, v, 0, 0, 32, 32, 7)) continue
        bg++
        const bubble = inRoundRect(u, v, 6, 9, 26, 22, 3) || inTail(u, v)
        const dot = dots.some((cx) => (u - cx) ** 2 + (v - 15.5) ** 2 <= 1.6 * 1.6)
        if (bubble && !dot) white++
      }
      const a = bg / 16, w = bg ? white / bg : 0
      const o = y * (size * 4 + 1) + 1 + x * 4
      for (let c = 0; c < 3; c++) px[o + c] = Math.round(blue[c] * (1 - w) + 255 * w)
      px[o + 3] = Math.round(a * 255)
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type, "ascii"), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(td))
    return Buffer.concat([len, td, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(size, 0)
  ihdr.writeUInt32BE(size, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // RGBA
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(px, { level: 9 })), chunk("IEND", Buffer.alloc(0))])
}

function crc32(buf) {
  let c = ~0
  for (const b of buf) {
    c ^= b
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1))
  }
  return ~c >>> 0
}

