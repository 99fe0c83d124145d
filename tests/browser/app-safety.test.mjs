// Browser tests of conversation verification in the member web app (issue
// #18; docs/verification.md), against the real binary with real passkeys:
// (1) safety codes: Alice and Bob in one conversation see the same code for
// the same epoch (and the same QR payload); Bob marks it verified; Alice
// adds Carol: both see a new, equal code at the next epoch, and Bob's mark
// is reset with a note that the members changed. (2) The history-mismatch
// banner: Bob's feed is rewritten in his browser (long-poll answers, SSE
// refused so the SDK falls back to long-poll) to drop one of Alice's
// messages; his app shows the warning in the conversation. (3) The scan:
// with Chromium's fake camera and a stand-in BarcodeDetector that "reads"
// what the test shows it (Chromium on Linux has no detector), Bob's scan of
// Alice's payload matches and marks the conversation verified; a payload
// with another digest or epoch is told apart. Any console
// error, page error or CSP violation fails a test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launchBrowser, openChat, person, register, repo, startServer } from "./lib.mjs";

const shots = join(repo, "artifacts", "app");
let srv, browser;

before(async () => {
  mkdirSync(shots, { recursive: true });
  srv = await startServer();
  // A fake camera for the scan test (its BarcodeDetector is stubbed: Chromium on Linux has none).
  browser = await launchBrowser(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await srv?.cleanup();
});

/** The safety code a person's open panel shows: digits, epoch and QR payload. */
async function code(p) {
  const el = p.page.locator("#safety-code");
  await el.waitFor({ timeout: 30000 });
  return {
    digits: (await el.textContent()).trim(),
    epoch: Number(await el.getAttribute("data-epoch")),
    qr: await p.page.locator("#safety-qr").getAttribute("data-payload"),
  };
}

/** Waits until a person's panel shows an epoch above `above`. */
async function codeAfter(p, above) {
  await p.page.waitForFunction((n) => Number(document.querySelector("#safety-code")?.getAttribute("data-epoch") ?? -1) > n, above, { timeout: 30000 });
  return code(p);
}

test("safety codes: equal for two people, new and equal after a third joins; the verified mark resets with a note", { timeout: 240000 }, async () => {
  const [alice, bob, carol] = [await person(browser, "alice"), await person(browser, "bob"), await person(browser, "carol")];
  const people = [alice, bob, carol];
  try {
    const res = await fetch(srv.baseURL + "/app/");
    assert.match(res.headers.get("permissions-policy") ?? "", /camera=\(self\)/, "the app may use the camera (QR scan)");
    await register(alice, srv.memberInvite(), "alice", "Alice");
    await register(bob, srv.memberInvite(), "bob", "Bob");
    await register(carol, srv.memberInvite(), "carol", "Carol");
    await alice.page.click("#new-chat");
    await alice.page.fill("#new-people", "bob");
    await alice.page.fill("#new-name", "Verify");
    await alice.page.click("#new-start");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    await bob.page.locator(`a.chat-item[data-chat="Verify"]`).waitFor({ timeout: 30000 });
    await openChat(bob, "Verify");

    for (const p of [alice, bob]) await p.page.click("#safety-toggle");
    const a1 = await code(alice);
    const b1 = await code(bob);
    assert.match(a1.digits, /^\d{4} \d{4} \d{4}$/);
    assert.ok(a1.epoch >= 1, `epoch ${a1.epoch}`);
    assert.deepEqual(b1, a1, "Alice and Bob see the same code, epoch and QR payload");
    assert.match(a1.qr, /^sovereign-safety:1:[A-Za-z0-9_-]+:\d+:[A-Za-z0-9_-]{43}$/);
    assert.equal(await alice.page.locator("#safety-epoch").textContent(), `For epoch ${a1.epoch} of this conversation`);
    // Headless Chromium on Linux has no BarcodeDetector: compare by eye.
    const scanner = await bob.page.evaluate(() => "BarcodeDetector" in globalThis);
    assert.equal(await bob.page.locator(scanner ? "#safety-scan" : "#safety-no-scan").count(), 1);

    await bob.page.click("#safety-mark");
    await bob.page.locator("#safety-verified").waitFor({ timeout: 10000 });
    assert.equal(await bob.page.locator("#safety-verified").textContent(), `Marked as verified at epoch ${a1.epoch}.`);
    await bob.page.screenshot({ path: join(shots, "safety-code-desktop.png") });

    // Alice adds Carol: a commit, so a new epoch and a new code, equal for all three.
    await alice.page.click("#members-toggle");
    await alice.page.fill("#add-people", "carol");
    await alice.page.click("#add-people ~ button[type=submit]");
    const a2 = await codeAfter(alice, a1.epoch);
    const b2 = await codeAfter(bob, a1.epoch);
    assert.equal(a2.epoch, a1.epoch + 1);
    assert.deepEqual(b2, a2, "both see the new code");
    assert.notEqual(a2.digits, a1.digits);
    await carol.page.locator(`a.chat-item[data-chat="Verify"]`).waitFor({ timeout: 30000 });
    await openChat(carol, "Verify");
    await carol.page.click("#safety-toggle");
    assert.deepEqual(await code(carol), a2, "and so does Carol");

    // Bob's mark was for the old epoch: reset, with a note that the members changed.
    const note = bob.page.locator("#safety-changed");
    await note.waitFor({ timeout: 10000 });
    assert.equal(await note.getAttribute("data-members-changed"), "true");
    assert.match(await note.textContent(), new RegExp(`verified this conversation at epoch ${a1.epoch}\\. The code changed since then because people or devices joined or left`));
    assert.equal(await bob.page.locator("#safety-verified").count(), 0);
    await bob.page.click("#safety-mark");
    await bob.page.locator("#safety-verified").waitFor({ timeout: 10000 });
    assert.equal(await bob.page.locator("#safety").getAttribute("data-state"), "verified");
    // The mark survives a reload (kept in this browser's sealed store).
    await bob.page.reload();
    await openChat(bob, "Verify");
    await bob.page.click("#safety-toggle");
    await bob.page.locator("#safety-verified").waitFor({ timeout: 30000 });
    assert.equal(await bob.page.locator("#safety-verified").textContent(), `Marked as verified at epoch ${a2.epoch}.`);

    assert.deepEqual(people.flatMap((p) => p.problems), []);
  } finally {
    for (const p of people) await p.ctx.close();
  }
});

test("the history-mismatch banner shows when the server withholds a message from one member", { timeout: 240000 }, async () => {
  const alice = await person(browser, "alice2");
  // Bob's page cannot use the service worker (its fetches would bypass the
  // rewrite below).
  const bob = await person(browser, "bob2", undefined, { serviceWorkers: "block" });
  const people = [alice, bob];
  try {
    // The misbehaving server, for Bob only: no event stream (the SDK falls
    // back to long-poll), and once armed, the next new application message
    // is dropped from every long-poll answer.
    const seen = new Set();
    let armed = false;
    let dropped;
    await bob.page.route(/\/v1\/events\?/, (route) => route.fulfill({ status: 200, contentType: "application/json", body: "{}" }));
    await bob.page.route(/\/v1\/sync\?/, async (route) => {
      const res = await route.fetch();
      if (!res.ok()) return route.fulfill({ response: res });
      const body = await res.json();
      body.events = (body.events ?? []).filter((e) => {
        if (e.kind !== "application") return true;
        if (!seen.has(e.id)) {
          seen.add(e.id);
          if (armed && !dropped) dropped = e.id;
        }
        return e.id !== dropped;
      });
      return route.fulfill({ response: res, json: body });
    });

    await register(alice, srv.memberInvite(), "alice2", "Alice");
    await register(bob, srv.memberInvite(), "bob2", "Bob");
    await alice.page.click("#new-chat");
    await alice.page.fill("#new-people", "bob2");
    await alice.page.fill("#new-name", "Tampered");
    await alice.page.click("#new-start");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    await bob.page.locator(`a.chat-item[data-chat="Tampered"]`).waitFor({ timeout: 30000 });
    await openChat(bob, "Tampered");
    assert.equal(await bob.page.locator("#history-warning").count(), 0, "no warning on an honest history");

    const send = async (text) => {
      await alice.page.fill("#composer", text);
      await alice.page.click("#send");
      await alice.page.locator("#messages .msg.mine[data-state=sent] .msg-text", { hasText: text }).waitFor({ timeout: 30000 });
    };
    await send("h1");
    await bob.page.locator("#messages .msg:not(.mine) .msg-text", { hasText: "h1" }).waitFor({ timeout: 30000 });
    armed = true;
    await send("h2");
    await send("h3");
    await bob.page.locator("#messages .msg:not(.mine) .msg-text", { hasText: "h3" }).waitFor({ timeout: 30000 });
    const banner = bob.page.locator("#history-warning");
    await banner.waitFor({ timeout: 10000 });
    assert.ok(dropped, "the rewrite dropped a message");
    assert.deepEqual(await bob.page.locator("#messages .msg:not(.mine) .msg-text").allTextContents(), ["h1", "h3"]);
    assert.match(await banner.getAttribute("data-reason"), /^(gap|withheld)$/);
    assert.match(await banner.textContent(), /did not deliver this conversation's history/);
    assert.equal(await alice.page.locator("#history-warning").count(), 0, "Alice saw an honest history");
    await bob.page.screenshot({ path: join(shots, "history-warning-desktop.png") });
    assert.deepEqual(people.flatMap((p) => p.problems), []);
  } finally {
    await bob.page.unrouteAll({ behavior: "ignoreErrors" });
    for (const p of people) await p.ctx.close();
  }
});

test("scanning the other person's QR code compares all of it", { timeout: 240000 }, async () => {
  const alice = await person(browser, "alice3");
  const bob = await person(browser, "bob3");
  const people = [alice, bob];
  // The stand-in detector returns window.__scan (set by the test) for every frame.
  await bob.page.addInitScript(() => {
    globalThis.BarcodeDetector = class {
      async detect(video) {
        if (!(video instanceof HTMLVideoElement) || video.readyState < 2) return [];
        return globalThis.__scan ? [{ rawValue: globalThis.__scan, format: "qr_code" }] : [];
      }
    };
  });
  try {
    await register(alice, srv.memberInvite(), "alice3", "Alice");
    await register(bob, srv.memberInvite(), "bob3", "Bob");
    await alice.page.click("#new-chat");
    await alice.page.fill("#new-people", "bob3");
    await alice.page.fill("#new-name", "Scan");
    await alice.page.click("#new-start");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    await bob.page.locator(`a.chat-item[data-chat="Scan"]`).waitFor({ timeout: 30000 });
    await openChat(bob, "Scan");
    for (const p of people) await p.page.click("#safety-toggle");
    const a = await code(alice);
    await codeAfter(bob, a.epoch - 1);

    const scan = async (payload) => {
      await bob.page.evaluate((v) => (globalThis.__scan = v), payload);
      await bob.page.click("#safety-scan");
      await bob.page.locator("#safety-video").waitFor({ timeout: 20000 }); // scanning (an earlier result is cleared)
      await bob.page.locator("#safety-scan-result").waitFor({ timeout: 20000 });
      const r = await bob.page.locator("#safety-scan-result").getAttribute("data-result");
      await bob.page.evaluate(() => (globalThis.__scan = undefined));
      return r;
    };
    // Another digest (one character changed), then another epoch: told apart, nothing marked.
    const parts = a.qr.split(":");
    const digest = parts[4];
    const otherDigest = [...parts.slice(0, 4), (digest[0] === "A" ? "B" : "A") + digest.slice(1)].join(":");
    assert.equal(await scan(otherDigest), "mismatch");
    assert.match(await bob.page.locator("#safety-scan-result").textContent(), /do NOT match/);
    assert.equal(await scan([...parts.slice(0, 3), String(a.epoch + 1), digest].join(":")), "other_epoch");
    assert.equal(await scan("sovereign-safety:1:not-a-code"), "unreadable");
    assert.equal(await bob.page.locator("#safety-verified").count(), 0);
    // Alice's own payload: a match, and the conversation is marked verified.
    assert.equal(await scan(a.qr), "match");
    await bob.page.locator("#safety-verified").waitFor({ timeout: 10000 });
    assert.equal(await bob.page.locator("#safety-verified").textContent(), `Marked as verified at epoch ${a.epoch}.`);
    assert.equal(await bob.page.locator("#safety-video").count(), 0, "the camera is off again");
    assert.deepEqual(people.flatMap((p) => p.problems), []);
  } finally {
    for (const p of people) await p.ctx.close();
  }
});
