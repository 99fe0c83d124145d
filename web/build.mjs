// Copies the front-end assets that the sovereign binary embeds from
// node_modules (installed from the npm registry by `npm ci`) into dist/.
// Nothing here is committed: dist/ is generated at build time.
import { cpSync, mkdirSync, rmSync, existsSync } from "node:fs";
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
