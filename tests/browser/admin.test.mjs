// Browser test of the admin console: the real sovereign binary, headless
// Chromium from the system driven by playwright-core over the DevTools
// protocol, and WebAuthn virtual authenticators (CDP WebAuthn domain)
// standing in for the people's passkeys.
//
// The story: the admin registers with the bootstrap invite printed in the
// server log, signs out and in again with the passkey, creates an invite;
// a member registers with it through the public API (in a second browser
// context with its own authenticator); the admin revokes the member's
// sessions in the UI and the member's token gets 401, and makes a
// recovery invite for them (its link shown once); an admin invite, the
// recovery invite and deleting the member each ask for the admin's passkey
// again (a step-up: the authenticator's signature counter moves by one);
// the audit log page lists every step. Each page is saved as a screenshot in artifacts/admin.
//
// The admin UI and API listen on their own address (--admin-listen), so
// the test also proves the public address does not serve them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.SOVEREIGN_BIN || join(repo, "bin", "sovereign");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(repo, "artifacts", "admin");

/** @returns {Promise<number>} a free TCP port on loopback */
function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {any} */ (s.address());
      s.close(() => res(port));
    });
  });
}

let srv, data, browser, apiURL, adminURL, bootstrapCode, bootstrapLink;
const logLines = [];

/** waitLog resolves with the first JSON log line that matches. */
function waitLog(match, ms = 20000) {
  return new Promise((res, rej) => {
    const found = logLines.find(match);
    if (found) return res(found);
    const timer = setTimeout(() => rej(new Error("timed out waiting for a log line; log so far:\n" + logLines.map((l) => JSON.stringify(l)).join("\n"))), ms);
    const check = () => {
      const f = logLines.find(match);
      if (f) { clearTimeout(timer); srv.stderr.off("data", check); res(f); }
    };
    srv.stderr.on("data", () => setImmediate(check));
  });
}

before(async () => {
  assert.ok(existsSync(bin), `${bin} is missing: run make build`);
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install chromium`);
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  data = mkdtempSync(join(tmpdir(), "sovereign-admin-test-"));
  const [pub, adm] = [await freePort(), await freePort()];
  apiURL = `http://localhost:${pub}`;
  adminURL = `http://localhost:${adm}`;
  srv = spawn(bin, ["serve",
    "--listen", `127.0.0.1:${pub}`, "--admin-listen", `127.0.0.1:${adm}`,
    "--data-dir", join(data, "data"), "--rp-id", "localhost", "--rp-origins", `${apiURL},${adminURL}`,
    "--log-format", "json", "--log-level", "info", "--sqlite-synchronous", "NORMAL",
    // The test runs some twenty ceremonies from one address within seconds; the
    // default burst of 10 would answer 429 on a fast machine (rate limits are
    // tested in handlers, not here).
    "--auth-burst", "60"], { stdio: ["ignore", "ignore", "pipe"] });
  let buf = "";
  srv.stderr.setEncoding("utf8");
  srv.stderr.on("data", (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { logLines.push(JSON.parse(line)); } catch { logLines.push({ msg: line }); }
    }
  });
  const invite = await waitLog((l) => typeof l.invite_code === "string");
  bootstrapCode = invite.invite_code;
  bootstrapLink = invite.link;
  await waitLog((l) => l.msg === "admin listening");

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
  if (srv && srv.exitCode === null) {
    const exited = new Promise((r) => srv.once("exit", r));
    srv.kill("SIGTERM");
    await exited;
  }
  if (data) rmSync(data, { recursive: true, force: true });
});

/** addAuthenticator gives a page its own platform authenticator. */
async function addAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { cdp, authenticatorId };
}

async function shot(page, name) {
  await page.waitForLoadState("networkidle");
  // Notifications fade after a few seconds; keep them out of the pictures.
  await page.evaluate(() => document.querySelectorAll(".toast").forEach((t) => t.remove()));
  await page.screenshot({ path: join(shots, name + ".png"), fullPage: true });
}

/** api calls the public API from Node. */
async function api(method, path, token, body) {
  const res = await fetch(apiURL + path, {
    method, headers: { ...(token ? { Authorization: "Bearer " + token } : {}), ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

test("admin registers, invites a member, revokes the member's sessions; the audit log shows it", { timeout: 180000 }, async () => {
  // The public address does not serve the admin UI or API.
  assert.equal((await fetch(apiURL + "/admin")).status, 404);
  assert.equal((await fetch(apiURL + "/v1/admin/stats")).status, 404);

  const adminCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await adminCtx.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`); });
  const { cdp, authenticatorId } = await addAuthenticator(page);
  try {
    await story(page, cdp, authenticatorId, problems);
  } catch (e) {
    // Keep what the page showed when it failed, and what went wrong on it.
    await page.screenshot({ path: join(shots, "failure.png"), fullPage: true }).catch(() => {});
    e.message += "\npage problems:\n" + problems.join("\n") + "\nserver log tail:\n" +
      logLines.slice(-15).map((l) => JSON.stringify(l)).join("\n");
    throw e;
  }
  await adminCtx.close();
});

async function story(page, cdp, authenticatorId, problems) {

  // 1. Register the first admin by opening the bootstrap invite link from
  // the log: it leads to the admin address, /invite redirects to the UI
  // and the code (in the fragment) is filled in.
  assert.equal(bootstrapLink, adminURL + "/invite?role=admin#" + bootstrapCode);
  await page.goto(bootstrapLink);
  await page.waitForSelector("#invite");
  assert.equal(await page.inputValue("#invite"), bootstrapCode);
  assert.ok(page.url().startsWith(adminURL + "/admin/#/register"), page.url());
  await page.fill("#username", "root");
  await page.fill("#display_name", "Ada Admin");
  await shot(page, "01-register");
  await page.click("button[type=submit]");
  await page.waitForSelector(".stat-value");
  await shot(page, "02-dashboard");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1, "one resident passkey on the admin's authenticator");
  assert.equal(credentials[0].isResidentCredential, true);

  // 2. Sign out, then sign in with the passkey (discoverable login).
  await page.click("text=Sign out");
  await page.waitForSelector("#signin");
  await shot(page, "03-signin");
  await page.click("#signin");
  await page.waitForSelector(".stat-value");
  assert.equal(await page.locator(".stat").first().locator(".stat-value").textContent(), "1");

  // 3. Create a member invite; the code is shown once.
  await page.click("a.nav-link:has-text('Invites')");
  await page.waitForSelector("#create-invite");
  await page.selectOption("#invite-role", "member");
  await page.click("#create-invite");
  await page.waitForSelector("#invite-result");
  const code = await page.inputValue("#invite-result input[aria-label='Invite code']");
  const link = await page.inputValue("#invite-result input[aria-label='Invite link']");
  assert.match(code, /^[a-z2-7]{4}(-[a-z2-7]{4}){7}$/);
  assert.equal(link, apiURL + "/invite#" + code, "a member invite links to the public address");
  await page.waitForSelector("table .badge-ok");
  await shot(page, "04-invites");

  // 3b. An admin invite needs the admin's own passkey again (a step-up: a
  // stolen session token alone must not mint admins): the console asks for
  // it and the virtual authenticator signs one more assertion.
  const signCount = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0].signCount;
  let signed = await signCount();
  await page.selectOption("#invite-role", "admin");
  await page.click("#create-invite");
  await page.waitForSelector("#invite-result .badge:has-text('admin')");
  assert.equal(await signCount(), signed + 1, "the admin invite asked for the admin's passkey");
  const adminLink = await page.inputValue("#invite-result input[aria-label='Invite link']");
  assert.ok(adminLink.startsWith(adminURL + "/invite?role=admin#"), adminLink);

  // 4. A member registers with it through the public API, in a browser
  // context of their own with their own authenticator.
  const memberCtx = await browser.newContext({ bypassCSP: true });
  const mpage = await memberCtx.newPage();
  await addAuthenticator(mpage);
  // The member's link opens the member app's registration on the public
  // address, code filled in (the admin UI is on its own address here).
  await mpage.goto(link);
  await mpage.waitForSelector("#invite");
  assert.ok(mpage.url().startsWith(apiURL + "/app/#"), mpage.url());
  assert.equal(await mpage.inputValue("#invite"), code);
  const grant = await mpage.evaluate(async (invite) => {
    const post = async (path, body) => {
      const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const j = await r.json();
      if (!r.ok) throw new Error(path + ": " + r.status + " " + JSON.stringify(j));
      return j;
    };
    const begin = await post("/v1/auth/register/begin", { invite_code: invite, username: "bob", display_name: "Bob Member" });
    const cred = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(begin.options) });
    return post("/v1/auth/register/finish", { ceremony_id: begin.ceremony_id, credential: cred.toJSON(), device_name: "Bob's phone" });
  }, code);
  assert.equal(grant.user.role, "member");
  const member = grant.token;
  assert.equal((await api("GET", "/v1/me", member)).status, 200, "the member's token works");
  // A member's token opens no admin operation (on the admin address either).
  assert.equal((await fetch(adminURL + "/v1/admin/stats", { headers: { Authorization: "Bearer " + member } })).status, 403);

  // 5. The admin finds the member and revokes their sessions.
  await page.click("a.nav-link:has-text('Users')");
  await page.fill("#user-search", "bo");
  await page.click("form[role=search] button");
  await page.waitForSelector("a:has-text('bob')");
  await shot(page, "05-users");
  await page.click("a:has-text('bob')");
  await page.waitForSelector("text=Bob's phone");
  await shot(page, "06-user");
  await page.click("button:has-text('Revoke sessions')");
  await page.waitForSelector("dialog[open]");
  await shot(page, "07-confirm");
  await page.click("dialog[open] [data-confirm]");
  await page.waitForSelector(".toast:has-text('1 session(s) revoked')");
  await page.waitForSelector("text=No active sessions.");

  // 5b. A recovery invite for the member: its link opens the member app's
  // recovery on the public address; link and code are shown once.
  signed = await signCount();
  await page.click("button:has-text('Recovery invite')");
  await page.waitForSelector("dialog[open]");
  await page.click("dialog[open] [data-confirm]");
  await page.waitForSelector("#recovery-result");
  assert.equal(await signCount(), signed + 1, "the recovery invite asked for the admin's passkey");
  const recoveryCode = await page.inputValue("#recovery-result input[aria-label='Recovery code']");
  assert.equal(await page.inputValue("#recovery-result input[aria-label='Recovery link']"), apiURL + "/app/#/recover?code=" + recoveryCode);
  await shot(page, "07b-recovery-invite");
  await page.reload();
  await page.waitForSelector("text=Bob's phone");
  assert.equal(await page.locator("#recovery-result").count(), 0, "the recovery code is not shown again");

  // 6. The member's token is dead.
  const after = await api("GET", "/v1/me", member);
  assert.equal(after.status, 401, "revoked token must answer 401");

  // 6b. Deleting the member: typed confirmation, then the admin's passkey.
  signed = await signCount();
  await page.click("button:has-text('Delete user')");
  await page.waitForSelector("dialog[open]");
  await page.fill("dialog[open] input", "bob");
  await page.click("dialog[open] [data-confirm]");
  await page.waitForSelector(".toast:has-text('bob deleted')");
  assert.equal(await signCount(), signed + 1, "deleting a user asked for the admin's passkey");

  // 7. The audit log lists these actions.
  await page.click("a.nav-link:has-text('Audit log')");
  await page.waitForSelector("table");
  const text = await page.locator("table").innerText();
  for (const want of ["Registered", "Admin signed in", "Created invite", "Revoked sessions", "Refused admin request", "Created recovery invite", "Deleted user"]) {
    assert.ok(text.includes(want), `audit log lacks "${want}":\n${text}`);
  }
  assert.ok(text.includes("bob") && text.includes("root"));
  await shot(page, "08-audit");

  // 8. Settings: change the registration mode and see it applied.
  await page.click("a.nav-link:has-text('Settings')");
  await page.waitForSelector("#set-registration_mode");
  await page.selectOption("#set-registration_mode", "open");
  await page.click("#save-settings");
  await page.waitForSelector(".badge:has-text('changed')");
  await shot(page, "09-settings");

  // 9. The same pages on a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, title, name] of [["/dashboard", "Dashboard", "10-phone-dashboard"], ["/users", "Users", "11-phone-users"], ["/audit", "Audit log", "12-phone-audit"]]) {
    await page.goto(adminURL + "/admin#" + hash);
    await page.waitForSelector(`h1.page-title:text-is("${title}")`);
    await page.waitForSelector("main table");
    await page.waitForLoadState("networkidle");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${hash} scrolls sideways on a phone by ${overflow}px`);
    await shot(page, name);
  }

  assert.deepEqual(problems.filter((p) => !p.startsWith("HTTP ")), [], "no script errors or CSP violations in the admin UI");
  await memberCtx.close();
}
