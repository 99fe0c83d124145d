// Passkey ceremonies through @simplewebauthn/browser, as the SDK's
// Authenticator: the SDK asks the server for options and posts the result;
// this turns the JSON options into navigator.credentials calls and back.
import { startAuthentication, startRegistration, WebAuthnAbortService } from "@simplewebauthn/browser"
import type { Authenticator, CreationOptionsJSON, RequestOptionsJSON } from "@sovereign-im/client"

export class BrowserPasskeys implements Authenticator {
  /** When set, the next assertion waits for the browser's autofill (conditional UI) instead of a prompt. */
  autofill = false

  async create(options: CreationOptionsJSON) {
    return (await startRegistration({ optionsJSON: options as never })) as never
  }

  async get(options: RequestOptionsJSON) {
    const useBrowserAutofill = this.autofill
    this.autofill = false
    return (await startAuthentication({ optionsJSON: options as never, useBrowserAutofill })) as never
  }

  /** Ends a waiting autofill request (before a modal sign-in, or when leaving the page). */
  cancel(): void {
    WebAuthnAbortService.cancelCeremony()
  }
}

/** A device name people recognise: browser and operating system. */
export function deviceName(ua = navigator.userAgent): string {
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chromium\//.test(ua)
        ? "Chromium"
        : /Chrome\//.test(ua)
          ? "Chrome"
          : /Safari\//.test(ua)
            ? "Safari"
            : "Browser"
  const os = /Android/.test(ua)
    ? "Android"
    : /iPhone|iPad|iPod/.test(ua)
      ? "iOS"
      : /Mac OS X/.test(ua)
        ? "macOS"
        : /Windows/.test(ua)
          ? "Windows"
          : /CrOS/.test(ua)
            ? "ChromeOS"
            : /Linux/.test(ua)
              ? "Linux"
              : ""
  return (os ? `${browser} on ${os}` : browser).slice(0, 64)
}
