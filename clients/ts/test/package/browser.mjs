// What a web app imports from the package; bundled by esbuild for the
// browser in package.test.ts.
import { SovereignClient, BrowserAuthenticator, EncryptedKeyValueStore, MemoryKeyValueStore, API_VERSION } from "@sovereign-im/client"

export async function start(baseUrl, key) {
  const client = await SovereignClient.open({
    baseUrl,
    storage: new EncryptedKeyValueStore(new MemoryKeyValueStore(), key),
    authenticator: new BrowserAuthenticator(),
  })
  return { client, api: API_VERSION }
}
