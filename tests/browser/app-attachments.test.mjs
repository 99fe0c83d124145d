// Browser test of attachments in the member web app: Alice and Bob (two
// browser contexts, real passkeys, the real binary) share a conversation.
// Alice sends a PNG picked with the file picker (then one dropped and one
// pasted): Bob sees its thumbnail
// inline (drawn, encrypted and uploaded by Alice's browser; downloaded,
// decrypted and digest-checked by Bob's), checked by decoded size and by
// the pixels' colour through a canvas, and taps it to open the full image,
// pixel-exact. Alice sends a text file: Bob downloads it and its bytes are
// the original's. Alice records a voice note (Chromium's fake microphone)
// (tap to start, tap to send; then hold and release) and Bob gets an
// <audio> with a playable blob: source. A refused upload
// shows as failed and its retry sends it; a tampered download shows an
// error and no image. The server's attachment files hold none of the
// plaintext (positive control: the markers are in what was sent). Any
// console error, page error or CSP violation fails the test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { launchBrowser, openChat, person, register, repo, startServer } from "./lib.mjs";

const shots = join(repo, "artifacts", "app");
let srv, browser;

before(async () => {
  mkdirSync(shots, { recursive: true });
  srv = await startServer();
  browser = await launchBrowser(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]);
});

after(async () => {
  await browser?.close();
  await srv?.cleanup();
});

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A solid-colour RGB PNG with a text chunk (the plaintext marker). */
function png(width, height, [r, g, b], text) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const raw = Buffer.alloc(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([r, g, b], y * (width * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("tEXt", Buffer.from("Comment\0" + text, "latin1")),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The decoded size of an <img> and the colour of its centre pixel, read through a canvas. */
function pixelOf(page, selector) {
  return page.$eval(selector, async (img) => {
    if (!img.complete) await new Promise((r) => img.addEventListener("load", r, { once: true }));
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(Math.floor(c.width / 2), Math.floor(c.height / 2), 1, 1).data;
    return { w: img.naturalWidth, h: img.naturalHeight, rgb: [d[0], d[1], d[2]], src: img.src };
  });
}

test("photos, files and voice notes between two browsers, verified, never in clear on the server", { timeout: 300000 }, async () => {
  const alice = await person(browser, "alice");
  const bob = await person(browser, "bob");
  const people = [alice, bob];
  const markers = [];
  const mark = (s) => { const m = `${s}-${randomBytes(8).toString("hex")}`; markers.push(m); return m; };
  try {
    const res = await fetch(srv.baseURL + "/app/");
    assert.match(res.headers.get("content-security-policy") ?? "", /media-src 'self' blob:;/);
    assert.match(res.headers.get("permissions-policy") ?? "", /microphone=\(self\)/);

    await register(alice, srv.memberInvite(), "alice", "Alice");
    await register(bob, srv.memberInvite(), "bob", "Bob");
    await alice.page.click("#new-chat");
    await alice.page.fill("#new-people", "bob");
    await alice.page.fill("#new-name", "Photos");
    await alice.page.click("#new-start");
    await alice.page.waitForSelector("#composer", { timeout: 30000 });
    await bob.page.locator(`a.chat-item[data-chat="Photos"]`).waitFor({ timeout: 30000 });
    await openChat(bob, "Photos");

    // 1. A picture, through the file picker.
    const colour = [200, 30, 60];
    const picture = png(96, 64, colour, mark("PNG-MARKER"));
    const t0 = performance.now();
    await alice.page.setInputFiles("#attach-input", { name: "red.png", mimeType: "image/png", buffer: picture });
    await alice.page.locator("#messages .msg.mine[data-state=sent] img.att-thumb").waitFor({ timeout: 30000 });
    const bobThumb = "#messages .msg:not(.mine) img.att-thumb";
    await bob.page.locator(bobThumb).waitFor({ timeout: 30000 });
    const shownMs = performance.now() - t0;
    const thumb = await pixelOf(bob.page, bobThumb);
    assert.ok(thumb.w > 0 && thumb.h > 0, `the thumbnail decodes (${thumb.w}×${thumb.h})`);
    assert.ok(thumb.src.startsWith("blob:"), thumb.src);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(thumb.rgb[i] - colour[i]) <= 10, `thumbnail colour ${thumb.rgb} ≈ ${colour}`);
    // Tap: the full image, decoded exactly.
    await bob.page.click("#messages .msg:not(.mine) .att-thumb-btn");
    await bob.page.locator(".att-viewer img.att-full").waitFor({ timeout: 30000 });
    const full = await pixelOf(bob.page, ".att-viewer img.att-full");
    assert.deepEqual([full.w, full.h, full.rgb], [96, 64, colour], "the full image is the original's size and colour");
    await bob.page.screenshot({ path: join(shots, "attachments-viewer-desktop.png") });
    await bob.page.click(".att-viewer .att-close");
    await bob.page.locator(".att-viewer").waitFor({ state: "detached" });
    assert.equal(await bob.page.locator("#messages .msg:not(.mine) .msg-text").count(), 0, "a photo has no text line");
    await bob.page.screenshot({ path: join(shots, "attachments-photo-desktop.png") });

    // Desktop: a picture dropped onto the conversation, another pasted into the composer.
    const put = (how, name, rgb) => alice.page.evaluate(([how, name, b64]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: "image/png" }));
      if (how === "paste") {
        document.querySelector("#composer").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
        return;
      }
      const chat = document.querySelector("section.chat");
      chat.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      chat.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [how, name, png(32, 32, rgb, mark("DROP-MARKER")).toString("base64")]);
    for (const [i, how, rgb] of [[1, "drop", [30, 160, 40]], [2, "paste", [240, 200, 20]]]) {
      await put(how, `${how}.png`, rgb);
      const sel = `#messages .msg:not(.mine) >> nth=${i}`;
      await bob.page.locator(`${sel} >> img.att-thumb`).waitFor({ timeout: 30000 });
      const px = await bob.page.locator(`${sel} >> img.att-thumb`).evaluate(async (img) => {
        if (!img.complete) await new Promise((r) => img.addEventListener("load", r, { once: true }));
        const c = document.createElement("canvas");
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const g = c.getContext("2d");
        g.drawImage(img, 0, 0);
        return [...g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data.slice(0, 3)];
      });
      for (let k = 0; k < 3; k++) assert.ok(Math.abs(px[k] - rgb[k]) <= 10, `${how}: thumbnail colour ${px} ≈ ${rgb}`);
    }

    // 2. A file of another type: offered for download with its name and size; the bytes match.
    const doc = Buffer.from(`${mark("TXT-MARKER")}\n`.repeat(300));
    await alice.page.setInputFiles("#attach-input", { name: "notes.txt", mimeType: "text/plain", buffer: doc });
    const dl = bob.page.locator("#messages .msg:not(.mine) .att-download", { hasText: "notes.txt" });
    await dl.waitFor({ timeout: 30000 });
    assert.match(await dl.textContent(), /notes\.txt \(\d+(\.\d)? KB\)/);
    const [download] = await Promise.all([bob.page.waitForEvent("download", { timeout: 30000 }), dl.click()]);
    assert.equal(download.suggestedFilename(), "notes.txt");
    const got = readFileSync(await download.path());
    assert.ok(got.equals(doc), "the downloaded file's bytes are the original's");

    // 3. A voice note: tap to record (the fake microphone), tap to send.
    await alice.page.click("#voice");
    await alice.page.locator("#voice.recording").waitFor();
    await alice.page.waitForTimeout(1500);
    await alice.page.click("#voice");
    const audio = "#messages .msg:not(.mine) audio.att-voice";
    await bob.page.locator(audio).waitFor({ timeout: 30000 });
    const played = await bob.page.$eval(audio, async (a) => {
      a.muted = true;
      await a.play();
      await new Promise((r) => setTimeout(r, 300));
      return { src: a.src, readyState: a.readyState, error: a.error?.code ?? null, time: a.currentTime };
    });
    assert.ok(played.src.startsWith("blob:"), played.src);
    assert.equal(played.error, null, "the voice note decodes");
    assert.ok(played.readyState >= 2 && played.time > 0, `the voice note plays (${JSON.stringify(played)})`);
    await bob.page.screenshot({ path: join(shots, "attachments-file-voice-desktop.png") });
    // Or hold the button and release it to send.
    await alice.page.hover("#voice");
    await alice.page.mouse.down();
    await alice.page.locator("#voice.recording").waitFor();
    await alice.page.waitForTimeout(1200);
    await alice.page.mouse.up();
    await bob.page.locator(audio).nth(1).waitFor({ timeout: 30000 });
    assert.equal(await alice.page.locator("#voice.recording").count(), 0, "releasing a hold stops the recording");

    // Upload progress: a 3 MiB file whose parts the network slows down.
    await alice.ctx.route(/\/v1\/attachments\/[^/]+\?offset=/, async (r) => { await new Promise((x) => setTimeout(x, 400)); return r.fallback(); });
    await alice.page.setInputFiles("#attach-input", { name: "big.bin", mimeType: "application/octet-stream", buffer: randomBytes(3 << 20) });
    const bar = alice.page.locator("#messages .msg.mine progress.att-progress");
    await bar.waitFor({ timeout: 30000 });
    await alice.page.waitForFunction(() => { const b = document.querySelector("#messages progress.att-progress"); return b && b.value > 0 && b.value < 1; }, null, { timeout: 30000 });
    await alice.page.screenshot({ path: join(shots, "attachments-progress-desktop.png") });
    await alice.page.locator("#messages .msg.mine[data-state=sent] .att-download", { hasText: "big.bin" }).waitFor({ timeout: 60000 });
    await alice.ctx.unroute(/\/v1\/attachments\/[^/]+\?offset=/);

    // 4. A refused upload (the server's quota answer, played by a route) shows as failed; retry sends it.
    let refuse = true;
    await alice.ctx.route("**/v1/attachments", (r) => {
      if (!refuse || r.request().method() !== "POST") return r.fallback();
      return r.fulfill({ status: 507, contentType: "application/problem+json",
        body: JSON.stringify({ status: 507, title: "Insufficient Storage", code: "group_quota_exceeded", detail: "the group's quota is full" }) });
    });
    alice.expected.push(/status of 507/);
    await alice.page.setInputFiles("#attach-input", { name: "later.txt", mimeType: "text/plain", buffer: Buffer.from(mark("LATER-MARKER")) });
    const failed = alice.page.locator("#messages .msg.mine[data-state=failed]", { hasText: "later.txt" });
    await failed.waitFor({ timeout: 30000 });
    await alice.page.setInputFiles("#attach-input", { name: "lost.txt", mimeType: "text/plain", buffer: Buffer.from(mark("LOST-MARKER")) });
    await alice.page.locator("#messages .msg.mine[data-state=failed]", { hasText: "lost.txt" }).waitFor({ timeout: 30000 });
    refuse = false;
    await failed.locator("button", { hasText: "Retry" }).click();
    await alice.page.locator("#messages .msg.mine[data-state=sent]", { hasText: "later.txt" }).waitFor({ timeout: 30000 });
    await bob.page.locator("#messages .msg:not(.mine) .att-download", { hasText: "later.txt" }).waitFor({ timeout: 30000 });
    // After a reload the file of a never-uploaded message is gone: it says so, with no Retry (which would send nothing).
    await alice.page.reload();
    const lost = alice.page.locator("#messages .msg.mine[data-state=failed]", { hasText: "lost.txt" });
    await lost.locator(".att-error", { hasText: "interrupted" }).waitFor({ timeout: 20000 });
    assert.equal(await lost.locator("button", { hasText: "Retry" }).count(), 0);
    await alice.page.waitForSelector("#attach-input", { state: "attached" });

    // 5. A download whose bytes were changed on the way is not shown: an error instead.
    let tampered = 0;
    await bob.ctx.route(/\/v1\/attachments\/[^/]+$/, async (r) => {
      if (r.request().method() !== "GET") return r.fallback();
      const resp = await r.fetch();
      const body = Buffer.from(await resp.body());
      body[Math.floor(body.length / 2)] ^= 1;
      tampered++;
      return r.fulfill({ response: resp, body });
    });
    await alice.page.setInputFiles("#attach-input", { name: "blue.png", mimeType: "image/png", buffer: png(40, 40, [20, 40, 220], mark("PNG2-MARKER")) });
    const bad = bob.page.locator("#messages .msg:not(.mine)").last();
    await bad.locator(".att-error", { hasText: "could not be verified" }).waitFor({ timeout: 30000 });
    assert.ok(tampered > 0, "the tampered answer was served");
    assert.equal(await bad.locator("img").count(), 0, "a failed check shows no image");
    await bob.ctx.unroute(/\/v1\/attachments\/[^/]+$/);

    // 6. The server's attachment files: ciphertext only.
    const dir = join(srv.dataDir, "attachments");
    const files = readdirSync(dir);
    assert.ok(files.length >= 6, `attachment files: ${files}`);
    const blobs = files.map((f) => readFileSync(join(dir, f)));
    assert.ok(picture.includes(markers[0]) && doc.includes(markers.find((m) => m.startsWith("TXT-MARKER"))), "positive control: the markers are in the plaintexts");
    for (const m of markers) assert.ok(!blobs.some((b) => b.includes(m)), `marker ${m} found in the server's attachment files`);
    assert.ok(!blobs.some((b) => b.includes(picture.subarray(0, 64))), "the PNG's bytes are not on the server");
    const db = ["sovereign.db", "sovereign.db-wal"].map((f) => join(srv.dataDir, f)).map((f) => { try { return readFileSync(f); } catch { return Buffer.alloc(0); } });
    for (const name of ["red.png", "notes.txt", "voice-note"]) assert.ok(!db.some((b) => b.includes(name)), `${name} is not in the database`);

    console.log(`attachment figures: picture picked → thumbnail shown in the other browser ${shownMs.toFixed(0)} ms`);
    for (const p of people) assert.deepEqual(p.problems, [], `${p.name}: no console errors or CSP violations`);
  } catch (e) {
    e.message += "\npage problems:\n" + people.flatMap((p) => p.problems).join("\n") + "\nserver log tail:\n" +
      srv.logLines.slice(-15).map((l) => JSON.stringify(l)).join("\n");
    throw e;
  } finally {
    for (const p of people) await p.ctx.close().catch(() => {});
  }
});
