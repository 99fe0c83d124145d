// Sovereign admin console. Plain JavaScript, no framework, nothing from
// another host. Every view is built with createElement and textContent
// (the page runs under Trusted Types, so markup from strings is
// impossible), and every action is a call to the public admin API with the
// session token of a passkey sign-in.
// @ts-check
"use strict";

(() => {
  // ---------------------------------------------------------------- DOM --

  /**
   * h builds an element. attrs: class, text, on<event> handlers, dataset
   * via data-*, boolean attributes via true/false; children are nodes,
   * strings or arrays (null and false are skipped).
   * @param {string} tag
   * @param {Record<string, any>|null} [attrs]
   * @param {...any} children
   * @returns {HTMLElement}
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value") /** @type {HTMLInputElement} */ (el).value = String(v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }

  /** @param {Node} el @param {any[]} children */
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
  }

  /** @param {Node} el @param {...any} children */
  function replace(el, ...children) {
    while (el.firstChild) el.removeChild(el.firstChild);
    append(el, children);
  }

  const $app = /** @type {HTMLElement} */ (document.getElementById("app"));
  const $toasts = /** @type {HTMLElement} */ (document.getElementById("toasts"));

  /** @param {string} msg @param {"ok"|"error"} [kind] */
  function toast(msg, kind = "ok") {
    const t = h("div", { class: "toast toast-" + kind, role: kind === "error" ? "alert" : "status" }, msg);
    $toasts.appendChild(t);
    setTimeout(() => t.classList.add("toast-out"), 4200);
    setTimeout(() => t.remove(), 4700);
  }

  // ------------------------------------------------------------ formats --

  const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  /** @param {string|null|undefined} s */
  const when = (s) => (s ? dtf.format(new Date(s)) : "—");
  const shortThisYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const shortOtherYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  /** compact time for log rows @param {string} s */
  function stamp(s) {
    const d = new Date(s);
    return (d.getFullYear() === new Date().getFullYear() ? shortThisYear : shortOtherYear).format(d);
  }
  /** the random tail of a UUIDv7 (its head is a timestamp) @param {string} id */
  const shortId = (id) => id.replace(/-/g, "").slice(-8);
  /** @param {string|null|undefined} s */
  function ago(s) {
    if (!s) return "never";
    const sec = Math.round((Date.now() - new Date(s).getTime()) / 1000);
    const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    const abs = Math.abs(sec);
    if (abs < 60) return fmt.format(-sec, "second");
    if (abs < 3600) return fmt.format(-Math.round(sec / 60), "minute");
    if (abs < 86400) return fmt.format(-Math.round(sec / 3600), "hour");
    return fmt.format(-Math.round(sec / 86400), "day");
  }
  /** @param {number} n */
  function bytes(n) {
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
  }
  const num = (/** @type {number} */ n) => new Intl.NumberFormat().format(n);

  // ----------------------------------------------------------- session --

  const TOKEN = "sovereign.admin.token";
  const USER = "sovereign.admin.user";
  const DEVICES = "sovereign.admin.devices"; // user handle → device id, so a browser stays one device

  const session = {
    get token() { return sessionStorage.getItem(TOKEN); },
    /** @returns {any} */
    get user() { try { return JSON.parse(sessionStorage.getItem(USER) || "null"); } catch { return null; } },
    /** @param {any} grant */
    set(grant) {
      sessionStorage.setItem(TOKEN, grant.token);
      sessionStorage.setItem(USER, JSON.stringify(grant.user));
    },
    clear() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(USER); },
  };

  /** @returns {Record<string,string>} */
  function knownDevices() {
    try { return JSON.parse(localStorage.getItem(DEVICES) || "{}"); } catch { return {}; }
  }
  /** @param {string} handle @param {string|null} id */
  function rememberDevice(handle, id) {
    const m = knownDevices();
    if (id) m[handle] = id; else delete m[handle];
    localStorage.setItem(DEVICES, JSON.stringify(m));
  }

  // --------------------------------------------------------------- API --

  class ApiError extends Error {
    /** @param {number} status @param {any} problem */
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || "request failed (" + status + ")");
      this.status = status;
      this.problem = problem || {};
      if (problem && Array.isArray(problem.errors) && problem.errors.length) {
        this.message += ": " + problem.errors.map((/** @type {any} */ e) => e.message + (e.location ? " (" + e.location + ")" : "")).join("; ");
      }
    }
  }

  /**
   * api calls the server. A 401 ends the local session and returns to
   * sign-in (unless quiet).
   * @param {string} method @param {string} path @param {any} [body]
   * @param {{auth?: boolean, stepUp?: string}} [opts] stepUp: a step-up
   * grant, sent as the Sovereign-Step-Up header
   */
  async function api(method, path, body, opts = {}) {
    /** @type {Record<string,string>} */
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.auth !== false && session.token) headers.Authorization = "Bearer " + session.token;
    if (opts.stepUp) headers["Sovereign-Step-Up"] = opts.stepUp;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, { detail: "the server cannot be reached" });
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 200) }; }
    if (!res.ok) {
      if (res.status === 401 && opts.auth !== false) {
        session.clear();
        if (!location.hash.startsWith("#/signin")) {
          toast("Your session ended. Sign in again.", "error");
          go("/signin");
        }
      }
      throw new ApiError(res.status, data);
    }
    return data;
  }

  // ----------------------------------------------------------- WebAuthn --

  // navigator.credentials calls go through @simplewebauthn/browser
  // (passkeys.js, loaded before this script).
  const passkeys = /** @type {any} */ (window).SovereignPasskeys;

  /** @param {any} e */
  function webauthnMessage(e) {
    if (e instanceof ApiError) return e.message;
    const code = e && (e.code || e.name);
    if (code === "ERROR_CEREMONY_ABORTED" || code === "NotAllowedError") return "The passkey prompt was cancelled or timed out.";
    if (code === "ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED" || code === "InvalidStateError") return "This authenticator already holds a passkey for this account.";
    if (code === "ERROR_INVALID_DOMAIN" || code === "ERROR_INVALID_RP_ID" || code === "SecurityError") return "Passkeys need a secure origin that matches the server's relying-party ID.";
    return (e && e.message) || String(e);
  }

  function deviceName() {
    const ua = navigator.userAgent;
    const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chromium" : /Safari\//.test(ua) ? "Safari" : "browser";
    const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
    return ("Admin console (" + browser + (os ? " on " + os : "") + ")").slice(0, 64);
  }

  async function signIn() {
    const begin = await api("POST", "/v1/auth/login/begin", {}, { auth: false });
    const json = await passkeys.signIn(begin.options);
    const handle = json.response.userHandle || "";
    const known = handle ? knownDevices()[handle] : undefined;
    /** @type {any} */
    const body = { ceremony_id: begin.ceremony_id, credential: json };
    if (known) body.device_id = known; else body.device_name = deviceName();
    let grant;
    try {
      grant = await api("POST", "/v1/auth/login/finish", body, { auth: false });
    } catch (e) {
      if (known && e instanceof ApiError && (e.status === 403 || e.status === 404)) rememberDevice(handle, null);
      throw e;
    }
    if (handle) rememberDevice(handle, grant.device_id);
    return grant;
  }

  /**
   * Asks for the admin's own passkey before an action that could take an
   * account over if only the session token were stolen (a recovery invite,
   * an admin invite, deleting a user) and returns the step-up grant the
   * server wants in the Sovereign-Step-Up header: single use, 60 seconds,
   * for this operation and (userId) this user.
   * @param {string} operation @param {string} [userId]
   */
  async function stepUp(operation, userId) {
    /** @type {any} */
    const body = { operation };
    if (userId) body.user_id = userId;
    const begin = await api("POST", "/v1/auth/step-up/begin", body);
    let credential;
    try {
      credential = await passkeys.signIn(begin.options);
    } catch (e) {
      throw new Error("Confirm with your passkey to do this. " + webauthnMessage(e));
    }
    const grant = await api("POST", "/v1/auth/step-up/finish", { ceremony_id: begin.ceremony_id, credential });
    return /** @type {string} */ (grant.step_up);
  }

  /** @param {{invite: string, username: string, display: string}} f */
  async function register(f) {
    const begin = await api("POST", "/v1/auth/register/begin",
      { invite_code: f.invite, username: f.username, display_name: f.display }, { auth: false });
    const credential = await passkeys.register(begin.options);
    const grant = await api("POST", "/v1/auth/register/finish",
      { ceremony_id: begin.ceremony_id, credential, device_name: deviceName() }, { auth: false });
    const handle = begin.options && begin.options.user && begin.options.user.id;
    if (handle) rememberDevice(handle, grant.device_id);
    return grant;
  }

  // ------------------------------------------------------------- shell --

  const NAV = [
    ["/dashboard", "Dashboard"],
    ["/users", "Users"],
    ["/invites", "Invites"],
    ["/settings", "Settings"],
    ["/audit", "Audit log"],
  ];

  /** @param {string} path */
  function go(path) {
    if (location.hash === "#" + path) route();
    else location.hash = "#" + path;
  }

  /** @param {string} title @param {...any} content */
  function page(title, ...content) {
    const current = location.hash.slice(1).split("?")[0];
    const u = session.user;
    document.title = title + " · Sovereign admin";
    const nav = h("nav", { class: "nav", "aria-label": "Sections" },
      NAV.map(([path, label]) => h("a", {
        href: "#" + path, class: "nav-link" + (current === path || current.startsWith(path + "/") ? " active" : ""),
        "aria-current": current === path ? "page" : null,
      }, label)));
    const header = h("header", { class: "topbar" },
      h("a", { class: "brand", href: "#/dashboard" }, h("img", { src: "/admin/assets/icon.svg", alt: "", width: "28", height: "28" }), h("span", null, "Sovereign", h("small", null, "admin"))),
      nav,
      h("div", { class: "who" },
        u ? h("span", { class: "who-name", title: u.username }, u.display_name || u.username) : null,
        h("button", { class: "btn btn-ghost btn-small", type: "button", onclick: signOut }, "Sign out")));
    const main = h("main", { class: "content", id: "main" }, h("h1", { class: "page-title" }, title), content);
    replace($app, h("div", { class: "shell" }, header, main));
    return main;
  }

  /** A full-screen card for signed-out views. @param {...any} content */
  function splash(...content) {
    replace($app, h("div", { class: "splash" },
      h("div", { class: "splash-card" },
        h("div", { class: "splash-brand" }, h("img", { src: "/admin/assets/icon.svg", alt: "", width: "44", height: "44" }),
          h("div", null, h("div", { class: "splash-title" }, "Sovereign"), h("div", { class: "muted" }, "Server administration"))),
        content)));
  }

  async function signOut() {
    try { await api("POST", "/v1/auth/logout", undefined); } catch { /* the session may be gone already */ }
    session.clear();
    go("/signin");
  }

  /**
   * confirm shows a modal dialog; with typed, the user must type that word.
   * @param {{title: string, body: string, action: string, danger?: boolean, typed?: string}} o
   * @returns {Promise<boolean>}
   */
  function confirmDialog(o) {
    return new Promise((resolve) => {
      const input = o.typed ? /** @type {HTMLInputElement} */ (h("input", { class: "input", autocomplete: "off", spellcheck: "false", "aria-label": "Type " + o.typed + " to confirm" })) : null;
      const ok = /** @type {HTMLButtonElement} */ (h("button", { class: "btn " + (o.danger ? "btn-danger" : "btn-primary"), type: "button", "data-confirm": "yes", disabled: !!o.typed }, o.action));
      const cancel = h("button", { class: "btn btn-ghost", type: "button" }, "Cancel");
      const dlg = /** @type {HTMLDialogElement} */ (h("dialog", { class: "dialog" },
        h("h2", { class: "dialog-title" }, o.title),
        h("p", { class: "dialog-body" }, o.body),
        input ? h("label", { class: "field" }, h("span", { class: "field-label" }, "Type ", h("strong", null, o.typed), " to confirm"), input) : null,
        h("div", { class: "dialog-actions" }, cancel, ok)));
      if (input) input.addEventListener("input", () => { ok.disabled = input.value.trim() !== o.typed; });
      const done = (/** @type {boolean} */ v) => { dlg.close(); dlg.remove(); resolve(v); };
      ok.addEventListener("click", () => done(true));
      cancel.addEventListener("click", () => done(false));
      dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
      document.body.appendChild(dlg);
      dlg.showModal();
      (input || cancel).focus();
    });
  }

  /** @param {HTMLButtonElement} btn @param {() => Promise<any>} fn */
  async function busy(btn, fn) {
    btn.disabled = true;
    btn.classList.add("busy");
    try { return await fn(); } finally { btn.disabled = false; btn.classList.remove("busy"); }
  }

  /** @param {any} e */
  function errorBox(e) {
    return h("div", { class: "alert alert-error", role: "alert" }, e instanceof Error ? e.message : String(e));
  }

  const loading = () => h("div", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Loading…");

  /** @param {string} text @param {string} [kind] */
  const badge = (text, kind = "") => h("span", { class: "badge" + (kind ? " badge-" + kind : "") }, text);

  /**
   * table renders rows as a table that becomes a list of cards on a phone.
   * @param {string[]} heads @param {any[][]} rows @param {string} [empty]
   */
  function table(heads, rows, empty = "Nothing here yet.") {
    if (!rows.length) return h("div", { class: "empty" }, empty);
    return h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("thead", null, h("tr", null, heads.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", null, rows.map((r) => h("tr", null, r.map((c, i) => h("td", { "data-label": heads[i] }, c)))))));
  }

  /** @param {string} label @param {string} value @param {string} [hint] */
  function copyField(label, value, hint) {
    const input = /** @type {HTMLInputElement} */ (h("input", { class: "input mono", readonly: true, value, "aria-label": label }));
    input.addEventListener("focus", () => input.select());
    const btn = h("button", { class: "btn btn-small", type: "button", onclick: async () => {
      try { await navigator.clipboard.writeText(value); toast(label + " copied"); }
      catch { input.focus(); input.select(); toast("Press Ctrl+C (⌘C) to copy", "error"); }
    } }, "Copy");
    return h("div", { class: "field" }, h("span", { class: "field-label" }, label), h("div", { class: "copy-row" }, input, btn), hint ? h("span", { class: "hint" }, hint) : null);
  }

  // ------------------------------------------------------------- views --

  function viewSignIn() {
    const status = h("div", { class: "form-status" });
    const btn = /** @type {HTMLButtonElement} */ (h("button", { class: "btn btn-primary btn-block", type: "button", id: "signin" }, "Sign in with a passkey"));
    btn.addEventListener("click", () => busy(btn, async () => {
      replace(status);
      try {
        const grant = await signIn();
        if (grant.user.role !== "admin") {
          session.set(grant);
          await signOut();
          replace(status, errorBox("This account is not an admin of this server."));
          return;
        }
        session.set(grant);
        toast("Signed in as " + grant.user.username);
        go("/dashboard");
      } catch (e) {
        replace(status, errorBox(webauthnMessage(e)));
      }
    }));
    splash(
      h("h1", { class: "splash-heading" }, "Sign in"),
      h("p", { class: "muted" }, "Use the passkey of an admin account. Your device asks for your fingerprint, face or PIN."),
      btn, status,
      h("p", { class: "splash-foot" }, "First start? ", h("a", { href: "#/register" }, "Register with the admin invite"), " printed in the server log."));
  }

  /** @param {URLSearchParams} params */
  function viewRegister(params) {
    const invite = /** @type {HTMLInputElement} */ (h("input", { class: "input mono", name: "invite", id: "invite", required: true, autocomplete: "off", spellcheck: "false", placeholder: "xxxx-xxxx-xxxx-…", value: params.get("code") || "" }));
    const username = /** @type {HTMLInputElement} */ (h("input", { class: "input", name: "username", id: "username", required: true, minlength: "3", maxlength: "32", pattern: "[a-zA-Z0-9._\\-]{3,32}", autocomplete: "username", autocapitalize: "none", spellcheck: "false" }));
    const display = /** @type {HTMLInputElement} */ (h("input", { class: "input", name: "display_name", id: "display_name", required: true, maxlength: "64", autocomplete: "name" }));
    const status = h("div", { class: "form-status" });
    const submit = /** @type {HTMLButtonElement} */ (h("button", { class: "btn btn-primary btn-block", type: "submit" }, "Create passkey and register"));
    const form = h("form", { class: "form", novalidate: true },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Invite code"), invite),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Username"), username, h("span", { class: "hint" }, "3–32 characters: letters, digits, dot, dash, underscore")),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Display name"), display),
      submit, status);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!/** @type {HTMLFormElement} */ (form).reportValidity()) return;
      busy(submit, async () => {
        replace(status);
        try {
          const grant = await register({ invite: invite.value.trim(), username: username.value.trim(), display: display.value.trim() });
          session.set(grant);
          if (grant.user.role !== "admin") {
            replace(status, h("div", { class: "alert alert-ok" }, "Registered as " + grant.user.username + ". This account is a member, not an admin: chat in the app at ", h("a", { href: "/app/" }, "/app"), "."));
            await signOut();
            return;
          }
          toast("Welcome, " + grant.user.display_name);
          go("/dashboard");
        } catch (e) {
          replace(status, errorBox(webauthnMessage(e)));
        }
      });
    });
    splash(
      h("h1", { class: "splash-heading" }, "Register"),
      h("p", { class: "muted" }, "Create your account with an invite. Your passkey stays on your device; the server never sees a password."),
      form,
      h("p", { class: "splash-foot" }, "Already registered? ", h("a", { href: "#/signin" }, "Sign in")));
  }

  async function viewDashboard() {
    const main = page("Dashboard", loading());
    try {
      const [st, audit] = await Promise.all([api("GET", "/v1/admin/stats"), api("GET", "/v1/admin/audit?limit=6")]);
      /** @param {string} label @param {string} value @param {string} [sub] @param {string} [href] */
      const card = (label, value, sub, href) => h(href ? "a" : "div", { class: "stat", href: href ? "#" + href : null },
        h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
      replace(main, h("h1", { class: "page-title" }, "Dashboard"),
        h("section", { class: "stats", "aria-label": "Server statistics" },
          card("Users", num(st.users), num(st.admins) + " admin" + (st.admins === 1 ? "" : "s") + " · " + num(st.disabled_users) + " disabled", "/users"),
          card("Devices", num(st.devices), num(st.revoked_devices) + " revoked"),
          card("Active sessions", num(st.active_sessions)),
          card("Open streams", st.open_streams === null || st.open_streams === undefined ? "—" : num(st.open_streams), "SSE, long-poll and WebSocket"),
          card("Groups", num(st.groups)),
          card("Stored messages", num(st.messages), bytes(st.message_bytes) + " of ciphertext"),
          card("Attachments", num(st.attachments ?? 0), bytes(st.attachment_bytes ?? 0) + " of ciphertext" + (st.attachment_uploads ? ", " + num(st.attachment_uploads) + " uploading" : "")),
          card("Key packages", num(st.key_packages)),
          card("Database", bytes(st.database_bytes), "file and write-ahead log")),
        h("section", { class: "panel" },
          h("div", { class: "panel-head" }, h("h2", null, "Recent activity"), h("a", { class: "btn btn-ghost btn-small", href: "#/audit" }, "Full audit log")),
          auditTable(audit.entries)),
        h("p", { class: "muted small" }, "API " + st.version + " · server started " + when(st.started_at)));
    } catch (e) {
      replace(main, h("h1", { class: "page-title" }, "Dashboard"), errorBox(e));
    }
  }

  /** @param {any} u */
  function userStatus(u) {
    return u.disabled_at ? badge("disabled", "danger") : badge("active", "ok");
  }

  /** @param {URLSearchParams} params */
  async function viewUsers(params) {
    const q = params.get("q") || "";
    const search = /** @type {HTMLInputElement} */ (h("input", { class: "input", type: "search", placeholder: "Search username or name", value: q, "aria-label": "Search users", id: "user-search" }));
    const list = h("section", { class: "panel" }, loading());
    const more = h("div", { class: "more" });
    const recovery = h("div", { id: "recovery-slot" });
    const form = h("form", { class: "toolbar", role: "search" }, search, h("button", { class: "btn", type: "submit" }, "Search"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); go("/users" + (search.value.trim() ? "?q=" + encodeURIComponent(search.value.trim()) : "")); });
    page("Users", form, recovery, list, more);
    /** @type {any[]} */
    const rows = [];
    /** @param {string} [after] */
    const load = async (after) => {
      try {
        const p = new URLSearchParams({ limit: "25" });
        if (q) p.set("q", q);
        if (after) p.set("after", after);
        const res = await api("GET", "/v1/admin/users?" + p);
        for (const u of res.users) {
          rows.push([
            h("a", { href: "#/users/" + u.id, class: "strong" }, u.username),
            u.display_name,
            u.role === "admin" ? badge("admin", "accent") : badge("member"),
            userStatus(u),
            num(u.devices),
            ago(u.last_seen_at),
            h("button", { class: "btn btn-small btn-ghost", type: "button", "data-recovery": u.username, onclick: async (/** @type {Event} */ ev) => {
              const b = /** @type {HTMLButtonElement} */ (ev.currentTarget);
              await busy(b, async () => {
                try { await recoveryInvite(u, recovery); } catch (e) { toast(e instanceof Error ? e.message : String(e), "error"); }
              });
            } }, "Recovery invite"),
          ]);
        }
        replace(list, table(["Username", "Name", "Role", "Status", "Devices", "Last seen", ""], rows, q ? "No user matches “" + q + "”." : "No users yet."));
        replace(more, res.next_after ? h("button", { class: "btn btn-ghost", type: "button", onclick: () => load(res.next_after) }, "Load more") : null);
      } catch (e) {
        replace(list, errorBox(e));
      }
    };
    await load();
  }

  /**
   * Makes a recovery invite for a user after a confirmation and shows its
   * link and code once in slot.
   * @param {any} u @param {HTMLElement} slot
   */
  async function recoveryInvite(u, slot) {
    if (!await confirmDialog({ title: "Recovery invite for " + u.username + "?", body: "A one-time link that lets " + u.username + " create a new passkey on a new device. When they use it, every passkey and session they have now ends. Give it to them over a channel you trust: whoever holds it can take over the account for 24 hours. You confirm with your own passkey next.", action: "Create recovery invite" })) return;
    const grant = await stepUp("recovery_invite", u.id);
    const r = await api("POST", "/v1/admin/users/" + u.id + "/recovery-invite", { expires_in_hours: 24 }, { stepUp: grant });
    replace(slot, h("div", { class: "panel panel-accent", id: "recovery-result" },
      h("div", { class: "panel-head" }, h("h2", null, "Recovery invite for " + u.username)),
      h("p", { class: "muted" }, "Shown only now: the server keeps only its hash. Valid until " + when(r.invite.expires_at) + ", once."),
      copyField("Recovery link", r.link, "Opens the member app's recovery with the code filled in."),
      copyField("Recovery code", r.code)));
    toast("Recovery invite created");
  }

  /** @param {string} id */
  async function viewUser(id) {
    const main = page("User", loading());
    let u;
    try {
      u = await api("GET", "/v1/admin/users/" + encodeURIComponent(id));
    } catch (e) {
      replace(main, h("h1", { class: "page-title" }, "User"), errorBox(e));
      return;
    }
    document.title = u.username + " · Sovereign admin";
    const self = session.user && session.user.id === u.id;
    /** @param {string} label @param {string} cls @param {() => Promise<void>} fn @param {boolean} [disabled] */
    const action = (label, cls, fn, disabled) => {
      const b = /** @type {HTMLButtonElement} */ (h("button", { class: "btn " + cls, type: "button", disabled: !!disabled }, label));
      b.addEventListener("click", () => busy(b, async () => {
        try { await fn(); } catch (e) { toast(e instanceof Error ? e.message : String(e), "error"); }
      }));
      return b;
    };
    const recovery = h("div", { id: "recovery-slot" });
    const actions = h("div", { class: "actions" },
      u.disabled_at
        ? action("Enable", "", async () => {
          await api("POST", "/v1/admin/users/" + u.id + "/enable", {});
          toast(u.username + " enabled"); viewUser(id);
        })
        : action("Disable", "btn-warn", async () => {
          if (!await confirmDialog({ title: "Disable " + u.username + "?", body: "They are signed out at once, their open streams close, they leave every group (the other members are asked to commit the removal) and they cannot sign in until enabled again. Their passkeys and devices stay.", action: "Disable", danger: true })) return;
          const r = await api("POST", "/v1/admin/users/" + u.id + "/disable", {});
          toast(u.username + " disabled: " + r.sessions_revoked + " session(s) ended, left " + r.groups + " group(s)"); viewUser(id);
        }, self),
      action("Revoke sessions", "", async () => {
        if (!await confirmDialog({ title: "Sign " + u.username + " out everywhere?", body: "Every session on every device ends now and open streams close. Their devices stay and can sign in again with a passkey.", action: "Revoke sessions", danger: true })) return;
        const r = await api("POST", "/v1/admin/users/" + u.id + "/revoke-sessions", {});
        toast(r.sessions_revoked + " session(s) revoked"); viewUser(id);
      }),
      action("Remove from groups", "", async () => {
        if (!await confirmDialog({ title: "Remove " + u.username + " from every group?", body: "Messages stop reaching their devices at once, and the other members are asked to commit the removal.", action: "Remove from groups", danger: true })) return;
        const r = await api("POST", "/v1/admin/users/" + u.id + "/remove-from-groups", {});
        toast("Removed from " + r.groups + " group(s)"); viewUser(id);
      }),
      action("Recovery invite", "", () => recoveryInvite(u, recovery)),
      action("Delete user", "btn-danger", async () => {
        if (!await confirmDialog({ title: "Delete " + u.username + " for good?", body: "Their account, passkeys, devices, sessions, key packages and group memberships are deleted. This cannot be undone. You confirm with your own passkey next.", action: "Delete user", danger: true, typed: u.username })) return;
        await api("DELETE", "/v1/admin/users/" + u.id, undefined, { stepUp: await stepUp("delete_user", u.id) });
        toast(u.username + " deleted"); go("/users");
      }, self));
    const facts = h("dl", { class: "facts" },
      [["Display name", u.display_name], ["Role", u.role], ["Created", when(u.created_at)], ["Last seen", ago(u.last_seen_at)],
        ["Groups", num(u.groups)], ["Passkeys", num(u.passkeys)], ["Disabled", u.disabled_at ? when(u.disabled_at) : "no"]]
        .map(([k, v]) => h("div", { class: "fact" }, h("dt", null, k), h("dd", null, v))));
    const devices = table(["Device", "Status", "Sessions", "Created", "Last seen"], u.device_list.map((/** @type {any} */ d) => [
      d.name, d.revoked_at ? badge("revoked", "danger") : badge("active", "ok"), num(d.active_sessions), when(d.created_at), ago(d.last_seen_at),
    ]), "No devices.");
    const sessions = table(["Device", "Signed in", "Last used", "Expires"], u.sessions.map((/** @type {any} */ s) => [
      s.device_name, when(s.created_at), ago(s.last_seen_at), when(s.expires_at),
    ]), "No active sessions.");
    replace(main,
      h("div", { class: "crumbs" }, h("a", { href: "#/users" }, "Users"), " / ", u.username),
      h("div", { class: "title-row" }, h("h1", { class: "page-title" }, u.username), u.role === "admin" ? badge("admin", "accent") : badge("member"), userStatus(u)),
      self ? h("p", { class: "muted" }, "This is you: you cannot disable or delete your own account here.") : null,
      actions,
      recovery,
      h("section", { class: "panel" }, facts),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Devices")), devices),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Active sessions")), sessions));
  }

  async function viewInvites() {
    const role = /** @type {HTMLSelectElement} */ (h("select", { class: "input", id: "invite-role" }, h("option", { value: "member" }, "Member"), h("option", { value: "admin" }, "Admin")));
    const expires = /** @type {HTMLSelectElement} */ (h("select", { class: "input", id: "invite-expiry" },
      [["1", "1 hour"], ["24", "1 day"], ["168", "7 days", true], ["720", "30 days"]].map(([v, l, sel]) => h("option", { value: v, selected: !!sel }, l))));
    const uses = /** @type {HTMLInputElement} */ (h("input", { class: "input", type: "number", min: "1", max: "1000", value: "1", id: "invite-uses" }));
    const result = h("div");
    const list = h("div", null, loading());
    const submit = /** @type {HTMLButtonElement} */ (h("button", { class: "btn btn-primary", type: "submit", id: "create-invite" }, "Create invite"));
    const form = h("form", { class: "form-grid" },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Role"), role),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Expires in"), expires),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Uses"), uses),
      h("div", { class: "field field-submit" }, submit));
    const refresh = async () => {
      try {
        const res = await api("GET", "/v1/admin/invites");
        replace(list, table(["Role", "Status", "Uses left", "Expires", "Created", "By", ""], res.invites.map((/** @type {any} */ i) => [
          i.role === "admin" ? badge("admin", "accent") : badge("member"),
          i.status === "active" ? badge("active", "ok") : badge(i.status.replace("_", " "), "muted"),
          num(i.uses_left), when(i.expires_at), when(i.created_at), i.created_by_username || "server",
          i.status === "active" ? h("button", { class: "btn btn-small btn-ghost", type: "button", onclick: async () => {
            if (!await confirmDialog({ title: "Revoke this invite?", body: "Nobody can register with its code any more.", action: "Revoke", danger: true })) return;
            try { await api("DELETE", "/v1/admin/invites/" + i.id); toast("Invite revoked"); refresh(); } catch (e) { toast(String(/** @type {any} */ (e).message), "error"); }
          } }, "Revoke") : "",
        ]), "No invites yet."));
      } catch (e) { replace(list, errorBox(e)); }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(submit, async () => {
        try {
          // An admin invite needs the admin's passkey too: a stolen
          // session token alone must not mint admins.
          const grant = role.value === "admin" ? await stepUp("admin_invite") : undefined;
          const res = await api("POST", "/v1/admin/invites", { role: role.value, expires_in_hours: Number(expires.value), uses: Number(uses.value) }, { stepUp: grant });
          replace(result, h("div", { class: "panel panel-accent", id: "invite-result" },
            h("div", { class: "panel-head" }, h("h2", null, "Invite created"), badge(res.invite.role, res.invite.role === "admin" ? "accent" : "")),
            h("p", { class: "muted" }, "The code is shown only now: the server keeps only its hash. Send the link or the code to the person you invite."),
            copyField("Invite code", res.code),
            copyField("Invite link", res.link, "Opens registration with the code filled in. Valid until " + when(res.invite.expires_at) + ".")));
          toast("Invite created");
          refresh();
        } catch (e) { replace(result, errorBox(e)); }
      });
    });
    page("Invites", h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "New invite")), form), result,
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Invites")), list));
    await refresh();
  }

  const SETTINGS = [
    { key: "registration_mode", label: "Registration", help: "Invite: a code is needed to register. Open: anyone who reaches the server can.", options: [["invite", "Invite only"], ["open", "Open"]] },
    { key: "messages_per_minute", label: "Messages per minute", help: "Messages one user may send per minute.", min: 1, max: 100000 },
    { key: "auth_per_minute", label: "Sign-in requests per minute", help: "Passkey ceremony requests per client address per minute.", min: 1, max: 10000 },
    { key: "auth_burst", label: "Sign-in burst", help: "Passkey ceremony requests per client address in a burst.", min: 1, max: 1000 },
    { key: "claims_per_minute", label: "Key-package claims per minute", help: "Claims per claiming device per minute.", min: 1, max: 10000 },
    { key: "groups_per_user", label: "Groups per user", help: "Groups a user may be in when creating another.", min: 1, max: 100000 },
    { key: "groups_per_hour", label: "Groups created per hour", help: "Groups one user may create per hour, all devices together.", min: 1, max: 100000 },
    { key: "devices_per_user", label: "Devices per user", help: "Devices (not revoked) one user may have; more sign-ins are refused until one is revoked.", min: 1, max: 10000 },
  ];

  async function viewSettings() {
    const main = page("Settings", loading());
    /** @param {any} st */
    const render = (st) => {
      /** @type {Record<string, HTMLInputElement|HTMLSelectElement>} */
      const inputs = {};
      const rows = SETTINGS.map((s) => {
        const cur = st.effective[s.key];
        const input = s.options
          ? /** @type {HTMLSelectElement} */ (h("select", { class: "input", id: "set-" + s.key }, s.options.map(([v, l]) => h("option", { value: v, selected: v === cur }, l))))
          : /** @type {HTMLInputElement} */ (h("input", { class: "input", type: "number", id: "set-" + s.key, min: String(s.min), max: String(s.max), value: String(cur), inputmode: "numeric" }));
        inputs[s.key] = input;
        const overridden = Object.prototype.hasOwnProperty.call(st.overrides, s.key);
        const reset = h("button", { class: "btn btn-small btn-ghost", type: "button", onclick: async () => {
          try { render(await api("PATCH", "/v1/admin/settings", { reset: [s.key] })); toast(s.label + " follows the configuration again"); } catch (e) { toast(String(/** @type {any} */ (e).message), "error"); }
        } }, "Use configured value");
        return h("div", { class: "setting" },
          h("div", { class: "setting-text" },
            h("label", { class: "setting-label", for: "set-" + s.key }, s.label, overridden ? badge("changed", "accent") : null),
            h("div", { class: "hint" }, s.help),
            h("div", { class: "hint" }, "Configured: ", h("span", { class: "mono" }, String(st.defaults[s.key])))),
          h("div", { class: "setting-control" }, input, overridden ? reset : null));
      });
      const status = h("div", { class: "form-status" });
      const save = /** @type {HTMLButtonElement} */ (h("button", { class: "btn btn-primary", type: "submit", id: "save-settings" }, "Save changes"));
      const form = h("form", { class: "panel settings" }, rows, h("div", { class: "form-foot" }, h("span", { class: "muted small" }, "Changes apply at once, without a restart, and are recorded in the audit log."), save), status);
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        /** @type {Record<string, any>} */
        const set = {};
        for (const s of SETTINGS) {
          const raw = inputs[s.key].value;
          const v = s.options ? raw : Number(raw);
          if (v !== st.effective[s.key]) set[s.key] = v;
        }
        if (!Object.keys(set).length) { toast("Nothing changed"); return; }
        busy(save, async () => {
          try { const next = await api("PATCH", "/v1/admin/settings", { set }); render(next); toast("Settings saved"); }
          catch (e) { replace(status, errorBox(e)); }
        });
      });
      replace(main, h("h1", { class: "page-title" }, "Settings"), form);
    };
    try { render(await api("GET", "/v1/admin/settings")); } catch (e) { replace(main, h("h1", { class: "page-title" }, "Settings"), errorBox(e)); }
  }

  /** @type {Record<string, string>} */
  const ACTIONS = {
    "user.disable": "Disabled user",
    "user.enable": "Enabled user",
    "user.delete": "Deleted user",
    "user.revoke_sessions": "Revoked sessions",
    "user.remove_from_groups": "Removed from groups",
    "invite.create": "Created invite",
    "invite.revoke": "Revoked invite",
    "settings.update": "Changed settings",
    "auth.register": "Registered",
    "auth.admin_login": "Admin signed in",
    "auth.login_failed": "Failed sign-in",
    "auth.clone_warning": "Cloned passkey blocked",
    "auth.admin_denied": "Refused admin request",
    "audit.pruned": "Old entries deleted",
    "user.recovery_invite": "Created recovery invite",
    "auth.step_up_denied": "Refused without passkey check",
  };

  /** @param {any} d */
  function detailText(d) {
    return Object.entries(d || {}).map(([k, v]) => k + "=" + (v === null ? "reset" : typeof v === "object" ? JSON.stringify(v) : String(v))).join(" · ");
  }

  const WARN = new Set(["auth.login_failed", "auth.clone_warning", "auth.admin_denied", "auth.step_up_denied", "user.delete", "user.disable", "user.recovery_invite"]);

  /** @param {any} e */
  function auditTarget(e) {
    if (!e.target_type) return "—";
    const d = e.detail || {};
    if (e.target_type === "user" && e.target_id) {
      const label = d.username || shortId(e.target_id);
      return e.action === "user.delete" ? h("span", null, label) : h("a", { href: "#/users/" + e.target_id }, label);
    }
    return h("span", null, e.target_type, e.target_id ? h("span", { class: "mono small muted" }, " " + shortId(e.target_id)) : null);
  }

  /** @param {any[]} entries */
  function auditTable(entries) {
    return table(["When", "Who", "What", "Target", "From", "Details"], entries.map((e) => {
      const d = { ...(e.detail || {}) };
      if (e.target_type === "user") delete d.username;
      return [
        h("time", { datetime: e.at, title: when(e.at), class: "nowrap" }, stamp(e.at)),
        e.actor ? e.actor.username : h("span", { class: "muted" }, "anonymous"),
        h("span", { class: "action" + (WARN.has(e.action) ? " action-warn" : "") }, ACTIONS[e.action] || e.action),
        auditTarget(e),
        h("span", { class: "mono small" }, e.client_ip || "—"),
        h("span", { class: "small detail" }, detailText(d)),
      ];
    }), "No entries.");
  }

  /** @param {URLSearchParams} params */
  async function viewAudit(params) {
    const action = params.get("action") || "";
    const filter = /** @type {HTMLSelectElement} */ (h("select", { class: "input", "aria-label": "Filter", id: "audit-filter" },
      [["", "Everything"], ["user.", "User actions"], ["invite.", "Invites"], ["settings.", "Settings"], ["auth.", "Security events"]]
        .map(([v, l]) => h("option", { value: v, selected: v === action }, l))));
    filter.addEventListener("change", () => go("/audit" + (filter.value ? "?action=" + encodeURIComponent(filter.value) : "")));
    const list = h("div", null, loading());
    const more = h("div", { class: "more" });
    page("Audit log", h("div", { class: "toolbar" }, filter), h("section", { class: "panel" }, list), more);
    /** @type {any[]} */
    const entries = [];
    /** @param {number} [before] */
    const load = async (before) => {
      try {
        const p = new URLSearchParams({ limit: "50" });
        if (action) p.set("action", action);
        if (before) p.set("before", String(before));
        const res = await api("GET", "/v1/admin/audit?" + p);
        entries.push(...res.entries);
        replace(list, auditTable(entries));
        replace(more, res.next_before ? h("button", { class: "btn btn-ghost", type: "button", onclick: () => load(res.next_before) }, "Older entries") : null);
      } catch (e) { replace(list, errorBox(e)); }
    };
    await load();
  }

  // ------------------------------------------------------------ router --

  function route() {
    const raw = location.hash.replace(/^#/, "") || "/dashboard";
    if (!raw.startsWith("/")) {
      // An invite link (/invite#<code>, redirected here with its fragment):
      // registration with the code filled in.
      const code = decodeURIComponent(raw);
      history.replaceState(null, "", "#/register?code=" + encodeURIComponent(code));
      return viewRegister(new URLSearchParams({ code }));
    }
    const [path, query] = raw.split("?");
    const params = new URLSearchParams(query || "");
    if (path === "/register") return viewRegister(params);
    if (path === "/signin") return viewSignIn();
    if (!session.token) return go("/signin");
    if (path === "/dashboard" || path === "/") return viewDashboard();
    if (path === "/users") return viewUsers(params);
    const m = path.match(/^\/users\/([0-9a-fA-F-]{36})$/);
    if (m) return viewUser(m[1]);
    if (path === "/invites") return viewInvites();
    if (path === "/settings") return viewSettings();
    if (path === "/audit") return viewAudit(params);
    page("Not found", h("p", null, "There is no such page. ", h("a", { href: "#/dashboard" }, "Back to the dashboard.")));
  }

  window.addEventListener("hashchange", route);
  route();
})();
