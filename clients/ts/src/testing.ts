// @sovereign-im/client/testing: for tests and tools only, never for an app
// that people use. A software passkey authenticator (its private keys live
// in memory) and the CBOR encoder/decoder it writes attestations with.
export * from "./software-authenticator.js"
export * from "./cbor.js"
