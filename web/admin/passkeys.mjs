// The admin console's passkey calls: @simplewebauthn/browser (from the npm
// registry, bundled by web/app/build.mjs into /admin/assets/passkeys.js)
// converts the server's JSON options for navigator.credentials and the
// resulting credential back to JSON. admin.js uses window.SovereignPasskeys.
import { startAuthentication, startRegistration } from "@simplewebauthn/browser";

globalThis.SovereignPasskeys = {
  /** @param {any} optionsJSON */
  register: (optionsJSON) => startRegistration({ optionsJSON }),
  /** @param {any} optionsJSON */
  signIn: (optionsJSON) => startAuthentication({ optionsJSON }),
};
