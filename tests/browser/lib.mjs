// Shared setup of the browser tests: the real sovereign binary on a free
// port with its JSON log collected, system Chromium through playwright-core,
// member invites from the CLI, and "people" (browser contexts with a
// virtual passkey authenticator whose console errors, page errors and CSP
// violations are recorded). app-attachments.test.mjs uses it; app.test.mjs
// keeps its own copy of the same steps.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const bin = process.env.SOVEREIGN_BIN || join(repo, "bin", "sovereign");
export const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {any} */ (s.address());
      s.close(() => res(port));
    });
  });
}

/** Starts the binary on a fresh data directory; resolves once it listens. */
export async function startServer(extraArgs = []) {
  assert.ok(existsSync(bin), `${bin} is missing: run make build`);
  const data = mkdtempSync(join(tmpdir(), "sovereign-browser-test-"));
  const dataDir = join(data, "data");
  const port = await freePort();
  const baseURL = `http://localhost:${port}`;
  const proc = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--rp-id", "localhost",
    "--rp-origins", baseURL, "--log-format", "json", "--log-level", "info",
    "--auth-per-minute", "600", "--auth-burst", "100", ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
  const logLines = [];
  let buf = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { logLines.push(JSON.parse(line)); } catch { logLines.push({ msg: line }); }
    }
  });
  const srv = {
    proc, data, dataDir, baseURL, logLines,
    /** Waits for a log line matching match. */
    waitLog(match, ms = 20000) {
      return new Promise((res, rej) => {
        const found = logLines.find(match);
        if (found) return res(found);
        const timer = setTimeout(() => rej(new Error("timed out waiting for a log line")), ms);
        const check = () => {
          const f = logLines.find(match);
          if (f) { clearTimeout(timer); proc.stderr.off("data", onData); res(f); }
        };
        const onData = () => setImmediate(check);
        proc.stderr.on("data", onData);
      });
    },
    /** A member invite, made as an admin makes one on the command line; returns its link. */
    memberInvite() {
      const out = execFileSync(bin, ["invite", "--data-dir", dataDir, "--public-url", baseURL, "--rp-origins", baseURL], { encoding: "utf8" });
      const m = /Link:\s+(\S+)/.exec(out);
      assert.ok(m, out);
      return m[1];
    },
    /** Stops the server (SIGTERM, waits for its exit). */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
    async cleanup() {
      await srv.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
  await srv.waitLog((l) => l.msg === "listening" || (typeof l.msg === "string" && l.msg.includes("listening")));
  return srv;
}

/** Launches the system's headless Chromium (extra flags, e.g. fake media devices). */
export async function launchBrowser(extraArgs = []) {
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install chromium`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic", ...extraArgs],
  });
}

/**
 * A person: a browser context with its own virtual platform authenticator
 * and a record (p.problems) of every console error, page error and CSP
 * violation. Console errors matching one of p.expected (set by a test for
 * a refusal it provokes on purpose) are not problems.
 */
export async function person(browser, name, viewport = DESKTOP, options = {}) {
  const ctx = await browser.newContext({ viewport, ...options });
  const page = await ctx.newPage();
  const p = { name, ctx, page, problems: [], expected: [] };
  page.on("pageerror", (e) => p.problems.push(`${name}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (p.expected.some((re) => re.test(m.text()))) return;
    p.problems.push(`${name}: console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  p.cdp = cdp;
  p.authenticatorId = authenticatorId;
  return p;
}

/** Registers a person with an invite link; waits for the conversation list. */
export async function register(p, link, username, displayName) {
  await p.page.goto(link);
  await p.page.waitForSelector("#invite");
  await p.page.fill("#username", username);
  await p.page.fill("#display_name", displayName);
  await p.page.click("button[type=submit]");
  await p.page.waitForSelector("#new-chat");
}

export async function openChat(p, title) {
  await p.page.click(`a.chat-item[data-chat="${title}"]`);
  await p.page.waitForSelector("#composer");
}
