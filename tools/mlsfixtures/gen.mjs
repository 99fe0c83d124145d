// Generates MLS (RFC 9420) fixtures with ts-mls for the Go package ../../mls.
//
// Output: ../../mls/testdata/tsmls/*.bin (raw MLSMessage bytes) and index.json
// describing each file (wire format, suite, group id, epoch, content type, refs, ...).
// Key material is random, so every run produces different bytes; the Go tests
// only assert what index.json records. Usage: npm ci && node gen.mjs
import { mkdirSync, writeFileSync, readdirSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  createGroupInfoWithExternalPubAndRatchetTree,
  joinGroup,
  processPrivateMessage,
  processMessage,
  acceptAll,
  getCiphersuiteImpl,
  getCiphersuiteFromName,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  encodeMlsMessage,
  decodeMlsMessage,
} from "ts-mls"
import { makeKeyPackageRef } from "ts-mls/keyPackage.js"

const here = dirname(fileURLToPath(import.meta.url))
const outDir = join(here, "..", "..", "mls", "testdata", "tsmls")
mkdirSync(outDir, { recursive: true })
for (const f of readdirSync(outDir)) if (f.endsWith(".bin") || f === "index.json") rmSync(join(outDir, f))

const te = new TextEncoder()
const hex = (b) => Buffer.from(b).toString("hex")
const index = { generator: "ts-mls@1.6.4 via tools/mlsfixtures/gen.mjs", fixtures: [] }

// write stores one MLSMessage, after checking ts-mls decodes it back consuming every byte.
function write(name, msg, meta) {
  const bytes = encodeMlsMessage(msg)
  const dec = decodeMlsMessage(bytes, 0)
  if (!dec || dec[1] !== bytes.length) throw new Error(`${name}: ts-mls did not consume its own encoding`)
  writeFileSync(join(outDir, `${name}.bin`), bytes)
  index.fixtures.push({ name, file: `${name}.bin`, size: bytes.length, wireFormat: msg.wireformat, ...meta })
  return bytes
}

// Lifetime used for every key package: a fixed window so the Go test can assert it.
const lifetime = { notBefore: 1700000000n, notAfter: 1900000000n }

async function keyPackage(name, suiteName, credential, lt = lifetime) {
  const impl = await getCiphersuiteImpl(getCiphersuiteFromName(suiteName))
  const kp = await generateKeyPackage(credential, defaultCapabilities(), lt, [], impl)
  const ref = await makeKeyPackageRef(kp.publicPackage, impl.hash)
  const meta = {
    cipherSuite: suiteIds[suiteName],
    ref: hex(ref),
    credentialType: credential.credentialType,
    notBefore: lt.notBefore.toString(),
    notAfter: lt.notAfter.toString(),
  }
  if (credential.credentialType === "basic") meta.identity = new TextDecoder().decode(credential.identity)
  else meta.certificates = credential.certificates.map(hex)
  write(name, { version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }, meta)
  return { kp, impl, ref }
}

const suiteIds = {
  MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519: 1,
  MLS_128_DHKEMP256_AES128GCM_SHA256_P256: 2,
  MLS_256_DHKEMP521_AES256GCM_SHA512_P521: 5,
  MLS_256_DHKEMP384_AES256GCM_SHA384_P384: 7,
}

const S1 = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
const basic = (s) => ({ credentialType: "basic", identity: te.encode(s) })

// --- key packages ---------------------------------------------------------
const alice = await keyPackage("kp_alice_s1", S1, basic("sovereign:device:3f2c9a1e-7b4d-4e8a-9c21-0d5e6f7a8b90"))
const bob = await keyPackage("kp_bob_s1", S1, basic("device:1234"))
await keyPackage("kp_x509_s1", S1, {
  credentialType: "x509",
  certificates: [te.encode("fake-leaf-certificate-der"), te.encode("fake-intermediate-certificate-der")],
})
await keyPackage("kp_default_lifetime_s1", S1, basic("device:default-lifetime"), defaultLifetime)
for (const [name, s] of [
  ["kp_p256", "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"],
  ["kp_p384", "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"],
  ["kp_p521", "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"],
]) {
  try {
    await keyPackage(name, s, basic(`device:${name}`))
  } catch (e) {
    console.error(`skipping ${name}: ${e.message}`)
  }
}

// --- group: alice creates, adds bob ---------------------------------------
const impl = alice.impl
const groupId = te.encode("sovereign-fixture-group-0001")
const gid = hex(groupId)
let aliceState = await createGroup(groupId, alice.kp.publicPackage, alice.kp.privatePackage, [], impl)

// Commit at epoch 0 adding bob, as a PrivateMessage, with the ratchet tree in the Welcome.
const addRes = await createCommit(
  { state: aliceState, cipherSuite: impl },
  { extraProposals: [{ proposalType: "add", add: { keyPackage: bob.kp.publicPackage } }], ratchetTreeExtension: true },
)
write("commit_add_private", addRes.commit, { groupId: gid, epoch: 0, contentType: "commit" })
write(
  "welcome_add_bob",
  { version: "mls10", wireformat: "mls_welcome", welcome: addRes.welcome },
  { cipherSuite: 1, newMembers: [hex(bob.ref)], addressedKeyPackage: "kp_bob_s1" },
)
aliceState = addRes.newState
let bobState = await joinGroup(addRes.welcome, bob.kp.publicPackage, bob.kp.privatePackage, emptyPskIndex, impl)
if (hex(bobState.groupContext.groupId) !== gid || bobState.groupContext.epoch !== 1n) throw new Error("bob join mismatch")

// Application messages at epoch 1: short and ~1 KiB.
for (const [name, text] of [
  ["private_app_short", "hello bob"],
  ["private_app_1k", "x".repeat(900)],
]) {
  const r = await createApplicationMessage(aliceState, te.encode(text), impl, te.encode("ad"))
  aliceState = r.newState
  const msg = { version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage }
  write(name, msg, { groupId: gid, epoch: 1, contentType: "application", authenticatedData: hex(te.encode("ad")) })
  const p = await processPrivateMessage(bobState, r.privateMessage, emptyPskIndex, impl)
  bobState = p.newState
  if (new TextDecoder().decode(p.message) !== text) throw new Error("bob could not read " + name)
}

// A public proposal (remove nobody useful: propose group-context-extensions, empty) at epoch 1.
{
  const r = await createProposal(
    bobState,
    true,
    { proposalType: "group_context_extensions", groupContextExtensions: { extensions: [] } },
    impl,
  )
  write("public_proposal", r.message, { groupId: gid, epoch: 1, contentType: "proposal", senderType: "member", leafIndex: 1 })
}

// GroupInfo at epoch 1 (alice is leaf 0).
{
  const gi = await createGroupInfoWithExternalPubAndRatchetTree(aliceState, [], impl)
  write(
    "group_info_epoch1",
    { version: "mls10", wireformat: "mls_group_info", groupInfo: gi },
    { cipherSuite: 1, groupId: gid, epoch: 1, signer: 0 },
  )
}

// Commit at epoch 1 as a PublicMessage (empty commit with path), sent by alice (leaf 0).
{
  const r = await createCommit({ state: aliceState, cipherSuite: impl }, { wireAsPublicMessage: true })
  write("commit_public", r.commit, { groupId: gid, epoch: 1, contentType: "commit", senderType: "member", leafIndex: 0 })
  const p = await processMessage(r.commit, bobState, emptyPskIndex, acceptAll, impl)
  bobState = p.newState
  aliceState = r.newState
  if (bobState.groupContext.epoch !== 2n) throw new Error("bob did not reach epoch 2")
}

// Commit at epoch 2 as a PrivateMessage, sent by bob (leaf 1).
{
  const r = await createCommit({ state: bobState, cipherSuite: impl }, {})
  write("commit_private_epoch2", r.commit, { groupId: gid, epoch: 2, contentType: "commit" })
}

writeFileSync(join(outDir, "index.json"), JSON.stringify(index, null, 2) + "\n")
console.log(`wrote ${index.fixtures.length} fixtures to ${outDir}`)
