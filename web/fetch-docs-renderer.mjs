// Installs the API docs renderer that the sovereign binary embeds at
// /docs: the single npm package pinned in docs-renderer.json, fetched as
// its registry tarball with `npm pack` (the ordinary npm client, its
// cache and its registry settings), checked against the pinned integrity,
// and of which only the listed files are unpacked into dist/docs. None of
// the package's dependencies is installed: its web-components build is
// self-contained.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pin = JSON.parse(readFileSync(join(here, "docs-renderer.json"), "utf8"));
const out = join(here, "dist", "docs");
const tmp = mkdtempSync(join(tmpdir(), "sovereign-docs-renderer-"));
try {
  const spec = `${pin.package}@${pin.version}`;
  const [packed] = JSON.parse(execFileSync("npm", ["pack", spec, "--json", "--silent", "--prefer-offline", "--pack-destination", tmp],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
  const tarball = join(tmp, packed.filename);
  const [algo, want] = pin.integrity.split("-", 2);
  const got = createHash(algo).update(readFileSync(tarball)).digest("base64");
  if (got !== want) {
    console.error(`${spec}: tarball integrity ${algo}-${got} differs from the pinned ${pin.integrity}`);
    process.exit(1);
  }
  const unpack = join(tmp, "unpacked");
  mkdirSync(unpack);
  execFileSync("tar", ["-xzf", tarball, "-C", unpack, ...pin.files.map((f) => `package/${f}`)], { stdio: "inherit" });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const now = new Date();
  for (const f of pin.files) {
    renameSync(join(unpack, "package", f), join(out, f));
    utimesSync(join(out, f), now, now); // the tarball's 1985 times would make make rebuild every time
  }
  console.log(`web: ${spec} (${pin.files.join(", ")}) installed in dist/docs`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
