// Copies the front-end assets that the sovereign binary embeds from
// node_modules (installed from the npm registry by `npm ci`) into dist/.
// Nothing here is committed: dist/ is generated at build time.
import { cpSync, mkdirSync, rmSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { Script } from "node:vm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const docs = join(dist, "docs");
rmSync(docs, { recursive: true, force: true });
mkdirSync(docs, { recursive: true });

const elements = join(here, "node_modules", "@stoplight", "elements");
for (const f of ["web-components.min.js", "styles.min.css"]) {
  const src = join(elements, f);
  if (!existsSync(src)) {
    console.error(`missing ${src}: run npm ci in web/`);
    process.exit(1);
  }
  cpSync(src, join(docs, f));
}
console.log("web: docs assets copied to dist/docs");

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
