// Browser test of the member app's people and account flows (issues #13,
// #14, #19): the real sovereign binary (directory setting "search"),
// headless Chromium driven by playwright-core, one CDP virtual
// authenticator per browser.
//
// The story: an admin registers in the console; Alice and Bob register in
// the app with display names. Alice looks for someone who does not exist
// ("no one with that username"), finds Bob by prefix and by exact username
// (display name, username, number of devices) and starts a conversation;
// display names show in the list, the members panel and on messages. Bob
// renames himself in Settings. Bob's first device is CLOSED; his second
// device signs in and joins the conversation by itself (external commit)
// and reads and writes. Bob's first device, opened again, shows the
// new-device banner and the messages it missed. Bob adds a passkey and
// removes it (adding it is approved by his existing passkey, removing it needs a step-up); his second device shows a
// banner for each. Bob's second device leaves the conversation: it goes
// from both of his devices and Alice sees that Bob left. Bob ends his
// other sessions. The admin makes a recovery invite in the console; Bob,
// on a clean browser, recovers with its link and lands signed in while
// his old device is signed out; the new device joins the group Alice had
// started with him and reads her next message. Finally he deletes his account (step-up,
// username typed) and sees the goodbye page; the directory no longer
// finds him.
// Any console error, page error or CSP violation fails the test, except
// the HTTP refusals a step expects (p.expectRefusals, named per step).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, loadavg } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = process.env.SOVEREIGN_BIN || join(repo, "bin", "sovereign");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = join(repo, "artifacts", "app-people");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

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

let srv, data, dataDir, browser, baseURL;
const logLines = [];

function waitLog(match, ms = 20000) {
  return new Promise((res, rej) => {
    const found = logLines.find(match);
    if (found) return res(found);
    const timer = setTimeout(() => rej(new Error("timed out waiting for a log line")), ms);
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
  data = mkdtempSync(join(tmpdir(), "sovereign-app-people-test-"));
  dataDir = join(data, "data");
  const port = await freePort();
  baseURL = `http://localhost:${port}`;
  srv = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--rp-id", "localhost",
    "--rp-origins", baseURL, "--log-format", "json", "--log-level", "info",
    "--auth-per-minute", "600", "--auth-burst", "100", "--directory", "search"], { stdio: ["ignore", "ignore", "pipe"] });
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
  await waitLog((l) => l.msg === "listening" || (typeof l.msg === "string" && l.msg.includes("listening")));
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

/**
 * A person: a browser context with its own virtual platform authenticator
 * and a record of every console error, page error and CSP violation.
 */
async function person(name, viewport = DESKTOP, options = {}) {
  const ctx = await browser.newContext({ viewport, ...options });
  const page = await ctx.newPage();
  const p = { name, ctx, page, problems: [], refusals: [], offline: false, expectRefusals: false };
  watch(p, page);
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

/** Records a page's console errors, page errors and dialogs (accepted) into p. */
function watch(p, page) {
  const name = p.name;
  page.on("pageerror", (e) => p.problems.push(`${name}: page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // While its network is cut on purpose, Chromium itself logs the requests
    // it could not make (the feed reconnecting): that is the browser's log
    // of the test's own action, not an error of the app.
    if (p.offline && /ERR_INTERNET_DISCONNECTED/.test(m.text())) return;
    // A refusal the step provokes on purpose (a lookup of no one, a
    // session ended elsewhere): Chromium logs every 4xx answer.
    if (p.expectRefusals && /Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) { p.refusals.push(m.text()); return; }
    p.problems.push(`${name}: console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());
}

async function shot(p, name, viewport) {
  const { page } = p;
  const original = page.viewportSize();
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    if (viewport && viewport !== label) continue;
    await page.setViewportSize(size);
    await page.waitForTimeout(100);
    await page.screenshot({ path: join(shots, `${name}-${label}.png`), fullPage: false });
    // No horizontal scrolling at any width.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${p.name} ${name} at ${label} scrolls sideways by ${overflow}px`);
  }
  await page.setViewportSize(original);
}

async function register(p, link, username, displayName) {
  await p.page.goto(link);
  await p.page.waitForSelector("#invite");
  assert.ok(p.page.url().startsWith(baseURL + "/app/#"), `${link} led to ${p.page.url()}`);
  assert.equal(await p.page.inputValue("#invite"), link.split("#")[1], "the invite code is filled in");
  await p.page.fill("#username", username);
  await p.page.fill("#display_name", displayName);
  if (username === "alice") await shot(p, "01-join");
  await p.page.click("button[type=submit]");
  await p.page.waitForSelector("#new-chat");
}

async function openChat(p, title) {
  await p.page.click(`a.chat-item[data-chat="${title}"]`);
  await p.page.waitForSelector("#composer");
}

async function send(p, text) {
  await p.page.fill("#composer", text);
  await p.page.click("#send");
}

/** Waits until a message with exactly this text is shown. */
async function sees(p, text, timeout = 30000) {
  await p.page.locator("#messages .msg-text", { hasText: text }).first().waitFor({ timeout });
}


/** An invite made on the command line (admin: the console's registration); returns its link. */
function inviteLink(admin = false) {
  const args = ["invite", "--data-dir", dataDir, "--public-url", baseURL, "--rp-origins", baseURL];
  if (admin) args.push("--admin");
  const m = /Link:\s+(\S+)/.exec(execFileSync(bin, args, { encoding: "utf8" }));
  assert.ok(m, "the invite command prints a link");
  return m[1];
}

/** A new page in p's context with a fresh virtual authenticator holding these credentials (a device opened again). */
async function reopen(p, credentials) {
  const page = await p.ctx.newPage();
  watch(p, page);
  const cdp = await p.ctx.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  for (const credential of credentials) await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
  Object.assign(p, { page, cdp, authenticatorId });
}

/** How many step-up ceremonies the server finished so far (from its request log). */
const stepUps = () => logLines.filter((l) => l.operation === "stepUpFinish" && l.status < 300).length;

test("people find each other, a second device joins alone, passkeys and sessions with step-up, leave, recovery, deletion", { timeout: 300000 }, async () => {
  const tag = () => randomBytes(5).toString("hex");
  const started = performance.now();
  const admin = await person("admin");
  const alice = await person("alice");
  const bob = await person("bob");
  const people = [admin, alice, bob];
  try {
    // The admin registers in the console with an admin invite.
    await admin.page.goto(inviteLink(true));
    await admin.page.waitForSelector("#invite");
    await admin.page.fill("#username", "root");
    await admin.page.fill("#display_name", "Ada Admin");
    await admin.page.click("button[type=submit]");
    await admin.page.waitForSelector(".stat-value");

    await register(alice, inviteLink(), "alice", "Alice Liddell");
    await register(bob, inviteLink(), "bob", "Bob Builder");

    // 1. The directory: no one by that name (404 in plain words), a prefix
    // list (the server allows search), then the exact match with display
    // name, username and number of devices.
    await alice.page.click("#new-chat");
    alice.expectRefusals = true;
    await alice.page.fill("#find-username", "nobody-" + tag());
    await alice.page.click("#find");
    await alice.page.locator(".find .error", { hasText: "No one with that username" }).waitFor();
    alice.expectRefusals = false;
    assert.equal(alice.refusals.length, 1, "one 404 for the unknown username");
    assert.match(alice.refusals[0], /status of 404/);
    await alice.page.fill("#find-username", "bo");
    await alice.page.locator("#matches button[data-username=bob]", { hasText: "Bob Builder" }).waitFor();
    await shot(alice, "01-find-prefix");
    await alice.page.click("#matches button[data-username=bob]");
    await alice.page.locator("#person .person-name", { hasText: "Bob Builder" }).waitFor();
    assert.equal(await alice.page.textContent("#person .person-username"), "@bob");
    assert.equal(await alice.page.textContent("#person .person-devices"), "1 device");
    await shot(alice, "02-find-exact");
    await alice.page.click("#start-with");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    const hello = `hello bob ${tag()}`;
    await send(alice, hello);
    await alice.page.locator(`#messages .msg.mine[data-state=sent]`, { hasText: hello }).waitFor({ timeout: 20000 });
    // Display names: the conversation list, the members panel, the sender.
    await alice.page.locator(`a.chat-item[data-chat="Bob Builder"]`).waitFor();
    await bob.page.locator(`a.chat-item[data-chat="Alice Liddell"]`).waitFor({ timeout: 30000 });
    await openChat(bob, "Alice Liddell");
    await sees(bob, hello);
    assert.equal(await bob.page.textContent("#messages .msg:not(.mine) .msg-from"), "Alice Liddell");
    await bob.page.click("#members-toggle");
    await bob.page.locator(".members .member-name", { hasText: "Alice Liddell" }).locator("text=@alice").waitFor();
    await shot(bob, "03-display-names");
    await bob.page.click("#members-toggle");

    // Bob changes his display name in Settings; the directory says so at once.
    await bob.page.click("a[href='#/settings']");
    await bob.page.fill("#my-display-name", "Bob the Builder");
    await bob.page.click("#save-display-name");
    await bob.page.locator(".toast", { hasText: "Name saved" }).waitFor();
    await alice.page.click("#new-chat");
    await alice.page.fill("#find-username", "bob");
    await alice.page.click("#find");
    await alice.page.locator("#person .person-name", { hasText: "Bob the Builder" }).waitFor();
    await alice.page.goBack();

    // 2. Bob's first device is closed; his second device signs in with the
    // same (synced) passkey and joins the conversation by itself.
    const { credentials } = await bob.cdp.send("WebAuthn.getCredentials", { authenticatorId: bob.authenticatorId });
    assert.equal(credentials.length, 1);
    await bob.page.close();
    const bob2 = await person("bob2", PHONE);
    people.push(bob2);
    await bob2.cdp.send("WebAuthn.addCredential", { authenticatorId: bob2.authenticatorId, credential: credentials[0] });
    const commitsBefore = logLines.filter((l) => l.operation === "commitGroup").length;
    const joinT0 = performance.now();
    await bob2.page.goto(baseURL + "/app/");
    await bob2.page.locator(`a.chat-item[data-chat="Alice Liddell"]`).waitFor({ timeout: 30000 });
    const joinMs = performance.now() - joinT0;
    assert.ok(logLines.some((l) => l.operation === "getGroupInfo" && l.status === 200), "the second device fetched the group's GroupInfo");
    assert.ok(logLines.filter((l) => l.operation === "commitGroup").length > commitsBefore, "and committed its external join");
    await openChat(bob2, "Alice Liddell");
    const toBob2 = `while bob's first device is closed ${tag()}`;
    await send(alice, toBob2);
    await sees(bob2, toBob2);
    const fromBob2 = `from bob's second device ${tag()}`;
    await send(bob2, fromBob2);
    await sees(alice, fromBob2);
    assert.equal(await alice.page.locator("#messages .msg:not(.mine)", { hasText: fromBob2 }).locator(".msg-from").textContent(), "Bob the Builder",
      "the sender is shown by the display name he chose");
    await shot(bob2, "04-second-device-joined", "phone");

    // 3. Bob's first device opens again: a banner names the new device, and
    // it reads what it missed.
    // (The copy of the synced passkey comes from the second device, with its
    // signature counter: the server blocks a passkey whose counter goes back.)
    await reopen(bob, (await bob2.cdp.send("WebAuthn.getCredentials", { authenticatorId: bob2.authenticatorId })).credentials);
    await bob.page.goto(baseURL + "/app/");
    const banner = bob.page.locator(".banner-alert[data-alert=devices]", { hasText: "A new device signed in:" });
    await banner.waitFor({ timeout: 20000 });
    assert.match(await banner.textContent(), /Review devices/);
    await shot(bob, "05-new-device-banner");
    await openChat(bob, "Alice Liddell");
    await sees(bob, toBob2);
    await sees(bob, fromBob2);
    await bob.page.click(".banner-alert[data-alert=devices] a");
    await bob.page.locator("#devices .device").nth(1).waitFor();
    assert.equal(await bob.page.locator(".banner-alert").count(), 0, "the banner is gone once reviewed");

    // 4. Passkeys: add one (approved by the old one) and remove it (after a step-up). The
    // virtual authenticator refuses to create a passkey for an account it
    // already holds one of (the server excludes existing passkeys), as a
    // second authenticator would not: the test lends it one by taking the
    // old credential out during the creation and putting it back after.
    await bob.page.click("a[href='#/settings']");
    await bob.page.locator("#passkeys .device").first().waitFor();
    assert.equal(await bob.page.locator("#passkeys .device").count(), 1);
    const credentialId = credentials[0].credentialId;
    let lent;
    await bob.page.route("**/v1/auth/add-passkey/begin", async (r) => {
      lent = (await bob.cdp.send("WebAuthn.getCredential", { authenticatorId: bob.authenticatorId, credentialId })).credential;
      await bob.cdp.send("WebAuthn.removeCredential", { authenticatorId: bob.authenticatorId, credentialId });
      await r.continue();
    });
    await bob.page.route("**/v1/auth/add-passkey/approve/begin", async (r) => {
      // (An authenticator keeps one discoverable passkey per account: the old
      // one comes back as a non-discoverable credential, which the approval
      // can still use since the server names the passkeys it accepts.)
      await bob.cdp.send("WebAuthn.addCredential", { authenticatorId: bob.authenticatorId, credential: { ...lent, isResidentCredential: false } });
      await r.continue();
    });
    let approved = false;
    await bob.page.route("**/v1/auth/add-passkey/finish", async (r) => {
      approved = JSON.parse(r.request().postData() ?? "{}").approval?.credential?.id === lent.credentialId.replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
      await r.continue();
    });
    let s0 = stepUps();
    await bob.page.fill("#passkey-name", "Backup key");
    await bob.page.click("#passkey-add");
    await bob.page.locator("#passkeys .passkey-name", { hasText: "Backup key" }).waitFor({ timeout: 20000 });
    assert.equal(await bob.page.locator("#passkeys .device").count(), 2);
    assert.equal(stepUps(), s0, "adding a passkey needs no step-up: the approval by the old passkey replaces it");
    assert.ok(approved, "the old passkey approved the new one");
    await bob2.page.locator(".banner-alert[data-alert=settings]", { hasText: "A passkey was added to your account: Backup key" }).waitFor({ timeout: 20000 });
    assert.equal(await bob.page.locator(".banner-alert").count(), 0, "the device that added it is not warned about itself");
    await shot(bob, "06-passkeys");
    s0 = stepUps();
    const backup = await bob.page.locator("#passkeys .device", { hasText: "Backup key" }).getAttribute("data-passkey");
    await bob.page.click(`button[data-remove-passkey="${backup}"]`);
    await bob.page.locator("#passkeys .passkey-name", { hasText: "Backup key" }).waitFor({ state: "detached", timeout: 20000 });
    assert.equal(await bob.page.locator("#passkeys .device").count(), 1);
    assert.equal(stepUps(), s0 + 1, "removing a passkey made one step-up");
    await bob2.page.locator(".banner-alert[data-alert=settings]", { hasText: "A passkey was removed from your account: Backup key" }).waitFor({ timeout: 20000 });
    await shot(bob2, "07-passkey-banners", "phone");

    // 5. Leave: from Bob's second device; the conversation goes from both of
    // his devices, and Alice sees that Bob left and can still write.
    await bob2.page.click("#members-toggle");
    // Every member device is marked verified (approved by a passkey of its person).
    await bob2.page.locator("[data-member-device][data-verified=true]").first().waitFor({ timeout: 20000 });
    await bob2.page.waitForFunction(() => document.querySelectorAll("[data-member-device][data-verified=unknown]").length === 0, null, { timeout: 20000 });
    assert.equal(await bob2.page.locator("[data-member-device][data-verified=false]").count(), 0, "no member device is unverified");
    await shot(bob2, "07b-verified-devices", "phone");
    await bob2.page.click("#leave-chat");
    await bob2.page.locator(`a.chat-item[data-chat="Alice Liddell"]`).waitFor({ state: "detached", timeout: 30000 });
    await bob.page.click("a[href='#/']");
    await bob.page.locator(`a.chat-item[data-chat="Alice Liddell"]`).waitFor({ state: "detached", timeout: 30000 });
    await alice.page.locator("#messages .msg-system", { hasText: "Bob the Builder left" }).waitFor({ timeout: 30000 });
    const afterLeave = `after bob left ${tag()}`;
    await send(alice, afterLeave);
    await alice.page.locator(`#messages .msg.mine[data-state=sent]`, { hasText: afterLeave }).waitFor({ timeout: 30000 });
    await shot(alice, "08-left");

    // 6. End all other sessions (step-up): Bob's second device is signed out.
    // (Its copy of the passkey goes first, as on a lost phone: otherwise its
    // sign-in page would sign in again at once with a stale counter.)
    await bob2.cdp.send("WebAuthn.clearCredentials", { authenticatorId: bob2.authenticatorId });
    bob2.expectRefusals = true;
    await bob.page.click("a[href='#/settings']");
    s0 = stepUps();
    await bob.page.click("#end-sessions");
    await bob.page.locator("#sessions-result", { hasText: "1 other session(s) ended" }).waitFor({ timeout: 20000 });
    assert.equal(stepUps(), s0 + 1, "ending the other sessions made one step-up");
    await bob2.page.locator(".banner", { hasText: "Your session ended" }).waitFor({ timeout: 20000 });
    assert.ok(bob2.refusals.some((r) => /status of 401/.test(r)), "the second device's session was refused");

    // Alice starts a group with Bob (his first device is in it).
    await alice.page.click("#new-chat");
    await alice.page.fill("#new-people", "bob");
    await alice.page.fill("#new-name", "Book club");
    await alice.page.click("#new-start");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    await bob.page.locator(`a.chat-item[data-chat="Book club"]`).waitFor({ timeout: 30000 });

    // 7. Recovery: the admin makes a recovery invite in the console; its link
    // opens the app's recovery, where Bob, on a clean browser, creates a new
    // passkey and lands signed in. His old passkey and sessions end.
    // (From the users list: each row has the button; the user's page too,
    // see admin.test.mjs.)
    // The console asks for the admin's own passkey first (a step-up for
    // recovery_invite and Bob): an admin token alone makes no recovery invite.
    await admin.page.goto(baseURL + "/admin/#/users");
    s0 = stepUps();
    await admin.page.click("button[data-recovery=bob]");
    await admin.page.click("button[data-confirm=yes]");
    const recoveryLink = await admin.page.inputValue("#recovery-result input[aria-label='Recovery link']");
    assert.equal(stepUps(), s0 + 1, "the recovery invite made one step-up, by the admin");
    const recoveryCode = await admin.page.inputValue("#recovery-result input[aria-label='Recovery code']");
    assert.equal(recoveryLink, `${baseURL}/app/#/recover?code=${recoveryCode}`);
    await shot(admin, "09-admin-recovery-invite");
    bob.expectRefusals = true;
    const bob3 = await person("bob3", PHONE);
    people.push(bob3);
    await bob3.page.goto(recoveryLink);
    assert.equal(await bob3.page.inputValue("#recovery-code"), recoveryCode);
    await shot(bob3, "10-recover", "phone");
    await bob3.page.click("#recover");
    await bob3.page.waitForSelector("#new-chat", { timeout: 30000 });
    await bob.page.locator(".banner", { hasText: "Your session ended" }).waitFor({ timeout: 20000 });
    await bob3.page.click("a[href='#/settings']");
    await bob3.page.locator("#passkeys .device").first().waitFor();
    assert.equal(await bob3.page.locator("#passkeys .device").count(), 1, "only the new passkey is left");
    // The recovered account's new device joins Bob's conversation by itself
    // and reads what Alice writes next.
    await bob3.page.click(".topbar a[aria-label=Back]");
    await bob3.page.locator(`a.chat-item[data-chat="Book club"]`).waitFor({ timeout: 30000 });
    await openChat(bob3, "Book club");
    const afterRecovery = `after the recovery ${tag()}`;
    await send(alice, afterRecovery);
    await sees(bob3, afterRecovery);
    // Alice's app met Bob's recovered device (its join by external commit):
    // his new passkey was approved by none of the old ones, an account reset.
    await alice.page.locator("[data-trust=account_reset]", { hasText: "bob's account was recovered by an admin — compare safety codes" }).waitFor({ timeout: 20000 });

    // 8. Delete the account: step-up, username typed; the goodbye page.
    await bob3.page.evaluate(() => { location.hash = "#/settings"; });
    const beforeDeletion = logLines.length;
    s0 = stepUps();
    await bob3.page.fill("#delete-confirm", "bob");
    await bob3.page.click("#delete-account");
    await bob3.page.waitForSelector("#goodbye", { timeout: 20000 });
    assert.equal(stepUps(), s0 + 1, "deleting the account made one step-up");
    await shot(bob3, "11-goodbye", "phone");
    alice.expectRefusals = true;
    await alice.page.click("#new-chat");
    await alice.page.fill("#find-username", "bob");
    await alice.page.click("#find");
    await alice.page.locator(".find .error", { hasText: "No one with that username" }).waitFor();
    alice.expectRefusals = false;
    // Alice's app commits the MLS removal of the deleted account's devices
    // from "Book club" (the server accepts it though their rows are gone).
    const commitsAfter = () => logLines.slice(beforeDeletion).filter((l) => l.operation === "commitGroup");
    for (let i = 0; i < 100 && !commitsAfter().some((l) => l.status === 201); i++) await alice.page.waitForTimeout(100);
    assert.deepEqual(commitsAfter().map((l) => l.status).filter((st) => st !== 201), [], "no commit refused");
    assert.ok(commitsAfter().some((l) => l.status === 201), "the removal of the deleted account's devices was committed");

    const total = performance.now() - started;
    console.log(`app-people figures: second device joined by itself in ${joinMs.toFixed(0)} ms (navigation to the conversation listed); ` +
      `whole story ${(total / 1000).toFixed(1)} s; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
    for (const p of people) assert.deepEqual(p.problems, [], `${p.name}: no console errors or CSP violations`);
    for (const p of people) await p.ctx.close();
  } catch (e) {
    for (const p of people) {
      await p.page.screenshot({ path: join(shots, `failure-${p.name}.png`) }).catch(() => {});
    }
    e.message += "\npage problems:\n" + people.flatMap((p) => p.problems).join("\n") + "\nserver log tail:\n" +
      logLines.slice(-20).map((l) => JSON.stringify(l)).join("\n");
    throw e;
  }
});
