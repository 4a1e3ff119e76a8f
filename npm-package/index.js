// baton-auth: the public API. The refresh logic is Rust compiled to WebAssembly
// (client-wasm, built into dist/ with its glue); this file only loads it and gives it a
// JavaScript face. `cargo xtask build-wasm` bundles the three into dist/index.js.
// Importing this module touches no browser global (SSR-safe).
import init, { BatonClient } from "./dist/wasm/baton_client.js";

const BRAND = Symbol.for("baton-auth.BatonError");

/** Every rejection from baton-auth. `code` is stable; server codes pass through unchanged. */
export class BatonError extends Error {
  constructor(code, message, status = 0, retryable = false, retryAfter) {
    super(message || code);
    this.name = "BatonError";
    this.code = code;
    this.status = status;
    this.retryable = retryable;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** True for a BatonError, even one created by another copy of this package. */
export function isBatonError(value) {
  return typeof value === "object" && value !== null && value[BRAND] === true;
}

function toBatonError(e) {
  if (isBatonError(e)) return e;
  if (e && typeof e === "object" && typeof e.code === "string") {
    return new BatonError(e.code, e.message, e.status || 0, !!e.retryable, e.retryAfter);
  }
  if (e && e.name === "AbortError") return new BatonError("aborted", e.message, 0, false);
  const err = new BatonError("internal", e && e.message ? e.message : String(e), 0, false);
  err.cause = e;
  return err;
}

// `origin` is where the call went. A request to another origin that got no answer fails the
// same way in the browser whether CORS refused it or the server is down; a HEAD without
// credentials in no-cors mode (whose answer the page cannot read) tells them apart: any answer
// means the server is up and its CORS answer refused this page.
async function call(fn, origin) {
  try {
    return await fn();
  } catch (e) {
    const err = toBatonError(e);
    if (err.code !== "network_error" || !origin || origin === pageOrigin()) throw err;
    const up = await fetch(origin + "/", {
      method: "HEAD",
      mode: "no-cors",
      credentials: "omit",
      cache: "no-store",
      signal: AbortSignal.timeout(5000),
    }).then(
      () => true,
      () => false,
    );
    const out = up
      ? new BatonError(
          "cors_error",
          `${origin} answered, but its CORS answer does not allow this page's origin with the Authorization, ` +
            "X-Device-ID and DPoP headers (Access-Control-Allow-Origin, Access-Control-Allow-Headers)",
        )
      : new BatonError("network_error", `${origin} could not be reached`, 0, true);
    out.cause = err;
    throw out;
  }
}

let loading = null;
function load(wasm) {
  if (!loading) {
    loading = (wasm === undefined ? init() : init({ module_or_path: wasm })).catch((e) => {
      loading = null;
      throw new BatonError("internal", `could not load baton-auth's WebAssembly: ${e && e.message}`);
    });
  }
  return loading;
}

const EVENTS = ["signedIn", "refreshed", "signedOut", "sessionExpired", "error", "change", "tokenRejected"];
// Events after which `baton.session` may be another value.
const CHANGES = new Set(["signedIn", "refreshed", "signedOut", "sessionExpired"]);

// The same object until its content changes, so `baton.session === baton.session` holds
// (React's useSyncExternalStore compares snapshots by identity).
function snapshot(prev, value) {
  const key = value == null ? null : JSON.stringify(value);
  return key === prev.key ? prev : { key, value: value == null ? null : Object.freeze(value) };
}

const pageOrigin = () =>
  typeof location !== "undefined" && location.origin && location.origin !== "null" ? location.origin : undefined;

// The origins that receive the access token and X-Device-ID: the page's own, baseUrl's, and
// those the app lists in `allowedOrigins`. Anything else is fetched without them.
function allowedOrigins(options) {
  const list = new Set();
  const here = pageOrigin();
  if (here) list.add(here);
  try {
    list.add(new URL(options.baseUrl, here).origin);
  } catch {
    // An unusable baseUrl is reported by the client itself.
  }
  const extra = options.allowedOrigins ?? [];
  if (!Array.isArray(extra)) throw new BatonError("invalid_options", "allowedOrigins must be an array of origins");
  for (const o of extra) {
    let url;
    try {
      url = new URL(String(o));
    } catch {
      url = null;
    }
    if (!url || url.origin === "null" || String(o).replace(/\/$/, "") !== url.origin) {
      throw new BatonError("invalid_options", `allowedOrigins: "${o}" is not an origin such as https://api.example.com`);
    }
    list.add(url.origin);
  }
  return list;
}

function targetOrigin(input, base) {
  try {
    return new URL(typeof Request !== "undefined" && input instanceof Request ? input.url : String(input), pageOrigin() ?? base).origin;
  } catch {
    return undefined;
  }
}

const MFA = Symbol.for("baton-auth.mfa");

export class Baton {
  #client;
  #listeners = new Map(EVENTS.map((name) => [name, new Set()]));
  #allowed = new Set();
  #baseUrl;
  #auth;
  #warned = new Set();
  #session = { key: null, value: null };
  #status = { key: null, value: null };

  /**
   * Creates a client. Options: baseUrl (required), storage, refreshTransport, refreshMargin,
   * crossTab, timeouts { auth, request }, storageKey, wasm (URL or module of the .wasm file).
   */
  static async create(options) {
    const baton = new Baton(BRAND);
    await call(async () => {
      baton.#allowed = allowedOrigins(options || {});
      baton.#baseUrl = options && options.baseUrl;
      baton.#auth = targetOrigin(baton.#baseUrl);
      await load(options && options.wasm);
      baton.#client = await BatonClient.create(
        options,
        (name, detail) => baton.#emit(name, detail),
        // The tabs' consistent store (see `shared` in client-wasm/js/platform.js).
        typeof indexedDB === "undefined" ? undefined : indexedDB,
      );
    });
    // The initial state, for listeners attached right after `create` (restored or not).
    setTimeout(() => baton.#emit("change", { session: baton.session }));
    return baton;
  }

  constructor(token) {
    if (token !== BRAND) throw new TypeError("use `await Baton.create(options)`");
  }

  #emit(name, detail) {
    const set = this.#listeners.get(name);
    if (!set) return;
    if (name === "error" && detail && !isBatonError(detail)) detail = toBatonError(detail);
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (e) {
        // A failing listener must not break the others or the client.
        setTimeout(() => {
          throw e;
        });
      }
    }
    if (CHANGES.has(name)) this.#emit("change", { session: this.session });
  }

  // A call to the Baton server (baseUrl).
  #call(fn) {
    return call(fn, this.#auth);
  }

  register(email, password) {
    return this.#call(async () => (await this.#client.call(0, "/auth/register", { email, password }, false)).user);
  }

  login(email, password, options) {
    return this.#signIn("/auth/login", { email, password }, options);
  }

  /** Mails a sign-in code and link to `email` (resolves whether or not it has an account). */
  requestCode(email) {
    return this.#call(async () => {
      await this.#client.call(0, "/auth/otp/request", { email }, false);
    });
  }

  /** Signs in with the 6-digit code of the mail. */
  verifyCode(email, code, options) {
    return this.#signIn("/auth/otp/verify", { email, code }, options);
  }

  /** Signs in with the `token` of the mailed link (the page it opened has it in its query). */
  verifyMagicLink(token, options) {
    return this.#signIn("/auth/magic-link/verify", { token }, options);
  }

  async #signIn(path, body, options) {
    const rememberMe = !!(options && options.rememberMe);
    const r = await this.#call(() => this.#client.call(1, path, body, rememberMe));
    if (!r || !r.mfa_required) return r;
    // A second factor is due (baton-auth/mfa finishes the sign-in).
    this[MFA] = { token: r.mfa_token, rememberMe };
    return { mfaRequired: true, methods: r.methods };
  }

  [Symbol.for("baton-auth.signIn")](path, body, options) {
    return this.#signIn(path, body, options);
  }

  /**
   * Like `fetch`, with `Authorization` and `X-Device-ID`; refreshes first and retries one 401.
   * Only the page's origin, baseUrl's and `allowedOrigins` get them: any other URL is fetched
   * as it is, without credentials.
   */
  fetch(input, init) {
    const target = targetOrigin(input, this.#baseUrl);
    if (target !== undefined && !this.#allowed.has(target)) {
      if (!this.#warned.has(target)) {
        this.#warned.add(target);
        console.warn(`baton-auth: ${target} is not in allowedOrigins; fetching it without credentials`);
      }
      return globalThis.fetch(input, init);
    }
    return call(() => this.#client.fetch(input, init), target);
  }

  /** An access token valid for at least `refreshMargin` seconds, or a BatonError. */
  getAccessToken() {
    return this.#call(() => this.#client.call(2, undefined, undefined, false));
  }

  /** Refreshes now (sharing any refresh already in flight); resolves to the session. */
  refresh() {
    return this.#call(() => this.#client.call(3, undefined, undefined, false));
  }

  logout() {
    return this.#call(() => this.#client.call(4, undefined, undefined, false));
  }

  logoutAll() {
    return this.#call(() => this.#client.call(5, undefined, undefined, false));
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on(event, listener) {
    const set = this.#listeners.get(event);
    if (!set) throw new BatonError("invalid_options", `unknown event "${event}" (one of ${EVENTS.join(", ")})`);
    if (typeof listener !== "function") throw new BatonError("invalid_options", "listener must be a function");
    set.add(listener);
    return () => set.delete(listener);
  }

  /** The session, or null; the same object until the session changes (see the `change` event). */
  get session() {
    this.#session = snapshot(this.#session, this.#client.view(0));
    return this.#session.value;
  }

  get deviceId() {
    return this.#client.view(1);
  }

  get baseUrl() {
    return this.#baseUrl;
  }

  /** Timing details: expiresAt, nextRefreshAt, refreshing, refreshCount, lastRefreshMs, skewMs. */
  status() {
    this.#status = snapshot(this.#status, this.#client.view(2));
    return this.#status.value;
  }

  /** Releases timers, listeners and channels; pending calls reject with code "disposed". */
  dispose() {
    for (const set of this.#listeners.values()) set.clear();
    this.#client.dispose();
  }
}

export default Baton;
