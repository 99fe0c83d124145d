// @sovereign-im/client: the Sovereign SDK for web, React Native and Node
// apps. This entry runs in browsers and in Node alike (fetch, WebCrypto,
// ts-mls; no Node built-ins). The file store is "@sovereign-im/client/node";
// the software authenticator and CBOR for tests are
// "@sovereign-im/client/testing".
export * from "./attachments.js"
export * from "./attest.js"
export * from "./attest-verifier.js"
export * from "./device-checks.js"
export * from "./bytes.js"
export * from "./chain.js"
export * from "./errors.js"
export * from "./feed.js"
export * from "./mls.js"
export * from "./safety.js"
export * from "./sse.js"
export * from "./storage.js"
export * from "./webauthn.js"
export * from "./client.js"
export * from "./push.js"
export * from "./version.js"
export type { paths, components, operations } from "./schema.js"
