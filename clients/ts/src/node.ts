// @sovereign-im/client/node: what only Node (and Node-like runtimes) can
// run: a KeyValueStore on the local file system.
export { FileKeyValueStore } from "./node-store.js"
