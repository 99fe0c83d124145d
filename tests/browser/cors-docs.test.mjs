// Browser test of what a third-party web app and a phone see: the real
// sovereign binary with --cors-origins, pages served by this test from two
// other origins (one allowed, one not), and the interactive docs at /docs
// in a phone-sized viewport. Headless Chromium from the system, driven by
// playwright-core.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { createServer as netServer } from "node:net";
import { createServer as httpServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.SOVEREIGN_BIN || join(repo, "bin", "sovereign");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(repo, "artifacts", "docs");

function freePort() {
  return new Promise((res, rej) => {
    const s = netServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {any} */ (s.address());
      s.close(() => res(port));
    });
  });
}

/** page serves one empty HTML page on port: the "other" web app. */
function page(port) {
  const s = httpServer((_, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>another app</title><p>another app</p>");
  });
  return new Promise((r) => s.listen(port, "127.0.0.1", () => r(s)));
}

let srv, data, browser, apiURL, allowedURL, otherURL;
const pages = [];

before(async () => {
  assert.ok(existsSync(bin), `${bin} is missing: run make build`);
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install chromium`);
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  data = mkdtempSync(join(tmpdir(), "sovereign-cors-test-"));
  const [pub, allowed, other] = [await freePort(), await freePort(), await freePort()];
  apiURL = `http://localhost:${pub}`;
  allowedURL = `http://localhost:${allowed}`;
  otherURL = `http://localhost:${other}`;
  pages.push(await page(allowed), await page(other));
  srv = spawn(bin, ["serve", "--listen", `127.0.0.1:${pub}`, "--data-dir", join(data, "data"),
    "--cors-origins", allowedURL, "--log-level", "warn", "--sqlite-synchronous", "NORMAL"], { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; ; i++) {
    try { if ((await fetch(apiURL + "/healthz")).ok) break; } catch { /* not up yet */ }
    assert.ok(i < 300, "the server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
  for (const p of pages) p.close();
  if (srv && srv.exitCode === null) {
    const exited = new Promise((r) => srv.once("exit", r));
    srv.kill("SIGTERM");
    await exited;
  }
  if (data) rmSync(data, { recursive: true, force: true });
});

/** calls runs fetches against the API from a page on origin; each answer is
 * {status, code} or {error} when the browser refused to hand it over. */
async function calls(origin) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(origin + "/");
  const out = await p.evaluate(async (api) => {
    const one = async (path, init) => {
      try {
        const r = await fetch(api + path, init);
        const body = await r.json().catch(() => ({}));
        return { status: r.status, code: body.code };
      } catch (e) {
        return { error: String(e) };
      }
    };
    return {
      // A JSON POST and a bearer header both need a preflight.
      registerBegin: await one("/v1/auth/register/begin", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ invite_code: "aaaa-bbbb-cccc-dddd", username: "someone" }),
      }),
      me: await one("/v1/me", { headers: { Authorization: "Bearer not-a-token" } }),
      // Credentials (cookies) are never allowed: tokens are bearer headers.
      withCredentials: await one("/v1/me", { credentials: "include", headers: { Authorization: "Bearer not-a-token" } }),
    };
  }, apiURL);
  await ctx.close();
  return out;
}

test("a web app on an allowed origin calls the API; other origins and credentialed requests are refused by the browser", { timeout: 120000 }, async () => {
  const ok = await calls(allowedURL);
  assert.equal(ok.registerBegin.error, undefined, JSON.stringify(ok));
  assert.ok(ok.registerBegin.status >= 400 && ok.registerBegin.status < 500 && ok.registerBegin.code, JSON.stringify(ok));
  assert.equal(ok.me.status, 401, JSON.stringify(ok));
  assert.match(ok.withCredentials.error ?? "", /TypeError|Failed to fetch/, JSON.stringify(ok));

  const other = await calls(otherURL);
  for (const [name, r] of Object.entries(other)) {
    assert.match(r.error ?? "", /TypeError|Failed to fetch/, `${name} from a non-allowed origin: ${JSON.stringify(r)}`);
  }
});

test("the interactive docs are usable on a phone: the operations are reachable and nothing overflows the screen", { timeout: 240000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const p = await ctx.newPage();
  const problems = [];
  p.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  p.on("pageerror", (e) => problems.push(String(e)));
  await p.goto(apiURL + "/docs");
  await p.getByText("Sovereign", { exact: false }).first().waitFor({ timeout: 60000 });
  // Elements loads its chunks after the first paint; on a loaded machine
  // the network goes quiet only after a while (30 s, the default, was not
  // always enough in CI).
  await p.waitForLoadState("networkidle", { timeout: 90000 });
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await p.screenshot({ path: join(shots, "phone.png") });
  assert.ok(overflow <= 1, `the docs are ${overflow} px wider than the phone's screen`);
  // The navigation is one tap away and leads to an operation.
  const menu = p.locator("[aria-label*=menu i], button:has(svg[data-icon=bars])").first();
  await menu.click({ timeout: 30000 });
  await p.getByText("groups", { exact: true }).first().click({ timeout: 30000 });
  await p.screenshot({ path: join(shots, "phone-menu.png") });
  const link = p.locator("a[href*='operations/']").first();
  await link.waitFor({ timeout: 30000 });
  await link.click();
  await p.locator("[data-testid=two-column-right], h1, h2").first().waitFor({ timeout: 30000 });
  await p.screenshot({ path: join(shots, "phone-operation.png") });
  assert.deepEqual(problems.filter((t) => /Content Security Policy|Refused/.test(t)), []);
  await ctx.close();
});
