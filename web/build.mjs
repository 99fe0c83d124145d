// Builds the front-end the sovereign binary embeds into dist/ (nothing
// there is committed): the admin UI from web/admin. The docs renderer is
// installed by fetch-docs-renderer.mjs. A front-end with npm dependencies
// of its own (web/app) keeps its own package.json and lock file in its
// directory and writes its build into dist/<name>.
import { cpSync, mkdirSync, rmSync, readFileSync, readdirSync } from "node:fs";
import { Script } from "node:vm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

// The admin UI: plain JavaScript, HTML and CSS from web/admin, no
// framework and nothing from a CDN. Each script is compiled here so a
// syntax error fails the build instead of the page.
const adminSrc = join(here, "admin");
const adminOut = join(dist, "admin");
rmSync(adminOut, { recursive: true, force: true });
mkdirSync(adminOut, { recursive: true });
for (const f of readdirSync(adminSrc)) {
  if (!/\.(html|css|js|svg)$/.test(f)) continue;
  const src = join(adminSrc, f);
  if (f.endsWith(".js")) {
    try {
      new Script(readFileSync(src, "utf8"), { filename: src });
    } catch (e) {
      console.error(`web/admin/${f}: ${e.message}`);
      process.exit(1);
    }
  }
  cpSync(src, join(adminOut, f));
}
console.log("web: admin UI copied to dist/admin");
