// Type-checked in the fresh project against the installed package's .d.ts
// files (moduleResolution NodeNext and Bundler), so the "types" conditions of
// every export resolve and name what apps use.
import { SovereignClient, MemoryKeyValueStore, API_VERSION, type ClientEvent, type components } from "@sovereign-im/client"
import { FileKeyValueStore } from "@sovereign-im/client/node"
import { SoftwareAuthenticator, encodeCbor } from "@sovereign-im/client/testing"

export async function check(): Promise<string> {
  const c = await SovereignClient.open({
    baseUrl: "http://localhost:8080",
    storage: new FileKeyValueStore("/tmp/x") ?? new MemoryKeyValueStore(),
    authenticator: new SoftwareAuthenticator({ origin: "http://localhost:8080" }),
  })
  const off = c.on((e: ClientEvent) => void e.seq)
  off()
  const me: components["schemas"]["GroupBody"] | undefined = undefined
  void me
  const b: Uint8Array = encodeCbor(1)
  return API_VERSION + b.length
}
