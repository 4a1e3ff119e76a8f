// The browser primitives baton-client calls: plain JavaScript, because each of these is a few
// bytes here and a few hundred in WebAssembly (wasm-bindgen ships this file beside the glue).
// The decisions (when to refresh, what an answer means) stay in Rust.

// Why a request got no response: "timeout", "aborted" (the caller's signal) or "network_error".
const failure = (e) => (e && e.name === "TimeoutError" ? "timeout" : e && e.name === "AbortError" ? "aborted" : "network_error");

// fetch(request) aborted after `ms`, also honouring the request's own signal.
async function timed(request, ms) {
  const t = AbortSignal.timeout(ms);
  try {
    return await fetch(new Request(request, { signal: request.signal ? AbortSignal.any([request.signal, t]) : t }));
  } catch (e) {
    throw failure(e);
  }
}

// A POST to baton-server. Resolves to { status, body (parsed JSON or null), retryAfter (seconds),
// skewMs (server clock minus ours, from Date), receivedAt }; rejects with a failure code.
export async function call(url, body, bearer, device, key, cookie, ms) {
  const headers = { "X-Device-ID": device };
  if (key) headers["Idempotency-Key"] = key;
  // A proof on every call of a DPoP client; with a bound access token, of that token too.
  const k = [...dpopOn].some((b) => url.startsWith(b + "/")) && (await dpopKey(true));
  const dpop = k && bearer && bound(bearer);
  if (k) headers.DPoP = await proof(k, "POST", url, dpop && bearer);
  if (bearer) headers.Authorization = (dpop ? "DPoP " : "Bearer ") + bearer;
  if (body != null) headers["Content-Type"] = "application/json";
  const res = await timed(
    new Request(url, {
      method: "POST",
      headers,
      body: body == null ? undefined : JSON.stringify(body),
      // A provider sign-in's code is bound to the browser cookie of its flow.
      credentials: cookie || url.includes("/oauth/") ? "include" : "same-origin",
    }),
    ms,
  );
  const receivedAt = Date.now();
  const h = (n) => res.headers.get(n);
  const ra = (h("retry-after") || "").trim();
  const at = Date.parse(ra);
  const date = Date.parse(h("date"));
  if (date === date) skew = date - receivedAt;
  let parsed = null;
  try {
    const text = await res.text();
    if (text) parsed = JSON.parse(text);
  } catch {}
  return {
    status: res.status,
    body: parsed,
    retryAfter: /^\d+$/.test(ra) ? Number(ra) : at === at ? Math.max(0, at - receivedAt) / 1000 : undefined,
    skewMs: date === date ? date - receivedAt : undefined,
    receivedAt,
  };
}

// The app's request with the token and device id, on a clone (the original keeps its body for
// the one retry after a 401). Resolves to the Response; rejects with a failure code, or
// "body_used" when the request's body was already read.
export async function send(request, token, device, ms) {
  let r;
  try {
    r = request.clone();
  } catch {
    throw "body_used";
  }
  // A DPoP-bound token goes with a proof of the key for this request.
  const k = bound(token) && (await dpopKey());
  if (k) r.headers.set("DPoP", await proof(k, r.method, r.url, token));
  r.headers.set("Authorization", (k ? "DPoP " : "Bearer ") + token);
  r.headers.set("X-Device-ID", device);
  return timed(r, ms);
}

// ---- DPoP (RFC 9449) ---------------------------------------------------------------------
// Whether an access token is DPoP-bound: its claims name a key (`cnf`).
// Read once per token: every call with it asks.
let boundAs = [];
function bound(token) {
  if (boundAs[0] !== token) {
    boundAs = [token];
    try {
      boundAs[1] = !!JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).cnf;
    } catch {}
  }
  return boundAs[1];
}

// The baseUrls whose instances asked for DPoP; the server clock minus ours (ms, from Date).
const dpopOn = new Set();
let skew = 0, keyP, pageKey, dbP, ath = [], jtiBase, jtiCount = 0;

const utf8 = new TextEncoder(),
  bytes = (s) => utf8.encode(s);
// base64url of a buffer's bytes, or of a string's UTF-8; by the browser's own encoder where
// there is one (per request, the spread to a string took more than the rest of a proof but
// its signature).
const b64u = (b) =>
  (b = typeof b == "string" ? bytes(b) : new Uint8Array(b)).toBase64
    ? b.toBase64({ alphabet: "base64url", omitPadding: true })
    : btoa(String.fromCharCode(...b)).replace(/[+/=]/g, (c) => (c == "+" ? "-" : c == "/" ? "_" : ""));

// The origin's DPoP key pair, kept in IndexedDB (see `kv`) so every tab uses the same one, and
// made there when there is none, non-extractable: Ed25519 where WebCrypto has it (a proof then
// costs the page about a fifth less than with P-256), else P-256. A P-256 key is kept where
// earlier versions of the package keep theirs and is used first when there is one, so a tab
// of an earlier version (during a deploy, after a rollback) and this one end up on the same
// key, at the worst after one sign-out; an Ed25519 key, which earlier versions cannot sign
// with, is kept under a name of its own. A new pair is stored only if the store still has
// none, so of racing tabs the first to store its key wins and the others use it. `fresh` reads
// it again (before each call to the server), so a deleted key ends the session rather than
// living on in memory. Without IndexedDB, a key for this page only. Resolves to [private key,
// the proofs' encoded header], or undefined when WebCrypto fails.
function dpopKey(fresh) {
  if (fresh || !keyP)
    keyP = (async () => {
      const P256 = "baton-auth:dpop-key",
        ED = P256 + "-ed25519",
        make = (a) => crypto.subtle.generateKey(a, false, ["sign"]),
        gen = () => make({ name: "Ed25519" }).catch(() => make({ name: "ECDSA", namedCurve: "P-256" }));
      let pair, made;
      // The stored pair (P-256 first), read in one transaction; with `made`, which is stored
      // under its kind's name if neither name holds a pair.
      const stored = (s) => {
        const p = s.get(P256),
          e = s.get(ED);
        if (made) e.onsuccess = () => p.result || e.result || s.put(made, made.privateKey.algorithm.name == "Ed25519" ? ED : P256);
        return { get result() { return p.result || e.result || made; } };
      };
      try {
        pair = (await kv(stored)) || ((made = await gen()), await kv(stored));
      } catch {
        pair = pageKey ||= await gen();
      }
      // Only the public members: WebCrypto's export adds `ext` and `key_ops: []`, which JOSE
      // libraries honour (an empty `key_ops` allows no use, and the proof fails to verify).
      const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
      // The proofs' header, the same for every proof of the key: encoded once.
      return [pair.privateKey, b64u(JSON.stringify({ typ: "dpop+jwt", alg: y ? "ES256" : "EdDSA", jwk: { kty, crv, x, y } }))];
    })().catch(() => {});
  return keyP;
}

// Runs `op(store)` on the "kv" store of the "baton-auth" IndexedDB database, in a transaction
// of its own; resolves to the result of the request `op` returns once the transaction commits.
// IndexedDB, unlike localStorage, shows every tab a write as soon as it committed.
function kv(op) {
  return (dbP ||= new Promise((ok, no) => {
    const r = indexedDB.open("baton-auth", 1);
    r.onupgradeneeded = () => r.result.createObjectStore("kv");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  })).then(
    (db) =>
      new Promise((ok, no) => {
        const tx = db.transaction("kv", "readwrite"),
          req = op(tx.objectStore("kv"));
        tx.oncomplete = () => ok(req.result);
        tx.onerror = tx.onabort = () => no(tx.error);
      }),
  );
}

// A DPoP proof of key `k` for a request (method, URL), with the hash of the access token sent
// with it; iat on the server's clock.
async function proof([key, head], htm, url, token) {
  // jti: this page's random id and a count, unique without a random draw per request.
  const c = { jti: (jtiBase ||= randomId() + ".") + ++jtiCount, htm, htu: /^[^?#]*/.exec(url)[0], iat: Math.floor((Date.now() + skew) / 1000) };
  // ath: hashed once per token (each WebCrypto call is a round trip to another thread).
  if (token) c.ath = ath[0] === token ? ath[1] : (ath = [token, b64u(await crypto.subtle.digest("SHA-256", bytes(token)))])[1];
  const input = head + "." + b64u(JSON.stringify(c));
  return input + "." + b64u(await crypto.subtle.sign({ name: key.algorithm.name, hash: "SHA-256" }, key, bytes(input)));
}

// A random id: crypto.randomUUID() (122 random bits).
export function randomId() {
  return crypto.randomUUID ? crypto.randomUUID() : String(Math.floor(Math.random() * 9e15));
}

// The device id: SHA-256 over stable device attributes and a random per-profile salt, base64url.
// The salt lives in localStorage (every tab of the profile shares it), else in memory; the raw
// attributes never leave the browser. Rejects with a message without SubtleCrypto.
export async function deviceId() {
  const SALT = "baton-auth:device-salt";
  let store, salt;
  try {
    store = localStorage;
    salt = store.getItem(SALT);
  } catch {}
  if (!salt || salt.length < 16) {
    salt = randomId();
    try {
      store.setItem(SALT, salt);
    } catch {}
  }
  const n = navigator;
  const s = globalThis.screen || {};
  const parts = [n.userAgent, n.language, n.platform, s.width, s.height, s.colorDepth, Intl.DateTimeFormat().resolvedOptions().timeZone, salt];
  if (!crypto.subtle) throw "SubtleCrypto is unavailable (needs a secure context)";
  return b64u(await crypto.subtle.digest("SHA-256", bytes(parts.map((p) => (p == null ? "" : p)).join("|"))));
}

// The id of the current browser session, kept in a cookie without expiry, which the browser
// drops when it closes: shared by every tab of the origin, unlike sessionStorage. With `create`,
// starts one when there is none (where cookies are refused, no later page finds it: a session
// marked with it then lasts as long as its page). Undefined without a document (workers).
export function browserSession(create) {
  if (typeof document === "undefined") return undefined;
  const name = "baton_browser_session=";
  const found = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith(name) && c.length > name.length);
  if (found || !create) return found && found.slice(name.length);
  const id = randomId();
  document.cookie = name + id + "; Path=/; SameSite=Strict" + (location.protocol === "https:" ? "; Secure" : "");
  return id;
}

// Calls `wake()` when the page may have slept or been throttled (shown again, back online,
// focused, visible). Returns the function that stops it.
export function watch(wake) {
  if (typeof window === "undefined") return () => {};
  const on = () => document.visibilityState === "hidden" || wake();
  const t = [[window, "pageshow"], [window, "online"], [window, "focus"], [document, "visibilitychange"]];
  for (const [target, name] of t) target.addEventListener(name, on);
  return () => {
    for (const [target, name] of t) target.removeEventListener(name, on);
  };
}

// Validates and completes the options of Baton.create; throws a message for invalid ones.
export function options(o) {
  if (o === null || typeof o !== "object") throw "options must be an object with at least baseUrl";
  const baseUrl = typeof o.baseUrl === "string" ? o.baseUrl.replace(/\/+$/, "") : "";
  if (!/^https?:\/\//.test(baseUrl)) throw 'baseUrl must be an http(s) URL, e.g. "https://auth.example.com"';
  const pick = (key, values, fallback) => {
    const v = o[key] === undefined ? fallback : o[key];
    if (!values.includes(v)) throw `${key} must be one of ${values.map((x) => `"${x}"`).join(", ")}`;
    return v;
  };
  const num = (from, key, fallback, min, max, unit) => {
    const v = from[key] === undefined ? fallback : from[key];
    if (typeof v !== "number" || !(v >= min && v <= max)) throw `${key} must be a number of ${unit}, ${min} to ${max}`;
    return v;
  };
  const t = o.timeouts === undefined ? {} : o.timeouts;
  if (t === null || typeof t !== "object") throw "timeouts must be { auth, request } in milliseconds";
  if (o.crossTab !== undefined && typeof o.crossTab !== "boolean") throw "crossTab must be a boolean";
  if (o.dpop !== undefined && typeof o.dpop !== "boolean") throw "dpop must be a boolean";
  // DPoP where WebCrypto and IndexedDB are there, unless turned off.
  o.dpop !== false && globalThis.crypto?.subtle && globalThis.indexedDB ? dpopOn.add(baseUrl) : dpopOn.delete(baseUrl);
  const key = o.storageKey === undefined ? "baton-auth:session:" + baseUrl : o.storageKey;
  if (typeof key !== "string" || !key || key.length > 200) throw "storageKey must be a non-empty string";
  return {
    baseUrl,
    storage: pick("storage", ["local", "session", "memory"], "local"),
    cookie: pick("refreshTransport", ["body", "cookie"], "body") === "cookie",
    margin: num(o, "refreshMargin", 60, 0, 86400, "seconds"),
    crossTab: o.crossTab !== false,
    auth: num(t, "auth", 10000, 1, 600000, "ms"),
    request: num(t, "request", 20000, 1, 600000, "ms"),
    storageKey: key,
  };
}

// localStorage or sessionStorage, checked to accept writes; throws a message when unusable.
export function webStorage(kind) {
  if (typeof window === "undefined") throw 'Web Storage needs a window; use storage: "memory"';
  let s;
  try {
    s = kind === "local" ? localStorage : sessionStorage;
  } catch {}
  if (!s) throw "Web Storage is unavailable (private mode or blocked)";
  try {
    s.setItem("baton-auth:probe", "1");
    s.removeItem("baton-auth:probe");
  } catch {
    throw "Web Storage refuses writes";
  }
  return s;
}

// Runs `body()` (which returns a promise) holding the Web Lock `name`. Waits at most `ms` for
// it, then takes it over: a tab frozen while holding it must not block the others. Where Web
// Locks are missing or fail, runs it without.
export async function locked(name, ms, body) {
  const locks = globalThis.navigator && navigator.locks;
  if (locks) {
    try {
      return await locks.request(name, { signal: AbortSignal.timeout(ms) }, body);
    } catch (e) {
      if (e && (e.name === "AbortError" || e.name === "TimeoutError")) {
        try {
          return await locks.request(name, { steal: true }, body);
        } catch {}
      }
    }
  }
  return body();
}

// A BroadcastChannel handing each message's data to `receive`; undefined where unavailable.
export function channel(name, receive) {
  try {
    const c = new BroadcastChannel(name);
    c.onmessage = (e) => receive(e.data);
    return c;
  } catch {}
}

const MESSAGES = {
  timeout: "the server did not answer in time",
  network_error: "the server could not be reached",
  session_missing: "not signed in",
  disposed: "this Baton instance was disposed",
  body_used: "the request body was already used",
};

// The message of an error code the client raises itself.
export function describe(code) {
  return MESSAGES[code] || "request failed: " + code;
}

// baton.fetch: the app's request with a token valid for the margin, and one retry after a 401
// when the client's machine says so. `client` is a BatonClient handle of its own (freed here);
// op 2 of its `call` gives a token, op 6 the token to retry with after a 401 (or nothing), op 7
// reports that an API refused a token fresh from a refresh.
export async function authorizedFetch(client, input, init, device, ms) {
  const attempt = (request, token) =>
    send(request, token, device, ms).catch((code) => {
      throw { code: code === "body_used" ? "invalid_request" : code, status: 0, retryable: code === "timeout" || code === "network_error", message: describe(code) };
    });
  try {
    let request;
    try {
      request = new Request(input, init);
    } catch (e) {
      throw { code: "invalid_request", status: 0, retryable: false, message: (e && e.message) || "invalid request" };
    }
    const token = await client.call(2, undefined, undefined, false);
    const first = await attempt(request, token);
    if (first.status !== 401 || (init && init.batonRetry === false)) return first;
    const retry = await client.call(6, token, undefined, false);
    if (typeof retry !== "string") return first;
    const second = await attempt(request, retry);
    if (second.status === 401) await client.call(7, retry, undefined, false);
    return second;
  } finally {
    client.free();
  }
}

// The tabs' shared store (`kv`, when `idb` is IndexedDB): "get" resolves to what `key` holds,
// parsed from JSON; "set" stores `value` as JSON; "del" removes it. A tab that refreshed writes
// the new session here before it releases the refresh lock, and the next holder reads it back.
export function shared(idb, method, key, value) {
  if (idb)
    return kv((s) => (method === "get" ? s.get(key) : method === "set" ? s.put(JSON.stringify(value), key) : s.delete(key))).then(parse);
}

// JSON text parsed; undefined when it is not a string of JSON.
function parse(text) {
  try {
    if (typeof text === "string") return JSON.parse(text);
  } catch {}
}

// What Web Storage `store` holds under `key`, parsed; undefined when nothing or not JSON.
export function load(store, key) {
  try {
    return parse(store.getItem(key));
  } catch {}
}

// Stores `value` as JSON under `key`; false when the storage refused it (quota, blocked).
export function save(store, key, value) {
  try {
    store.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

// The stored form of a token response (see storage.rs), or undefined when the response is not
// one. `keep`: the refresh token to keep when the response has none (a refresh in cookie mode
// has none at all).
export function stored(t, receivedAt, skewMs, keep, browser) {
  const u = t && t.user;
  const str = (v) => typeof v === "string";
  const num = (v) => typeof v === "number";
  if (!u || !str(t.access_token) || !str(t.token_type) || !num(t.expires_in) || !num(t.expires_at) || !num(t.refresh_expires_in) || !str(t.session_id) || !str(u.id) || !str(u.email) || !num(u.created_at)) return;
  const s = {
    v: 1,
    accessToken: t.access_token,
    expiresIn: t.expires_in,
    receivedAt,
    refreshToken: str(t.refresh_token) ? t.refresh_token : keep,
    refreshExpiresAt: receivedAt + t.refresh_expires_in * 1000,
    userId: u.id,
    email: u.email,
    roles: Array.isArray(u.roles) ? u.roles.filter(str) : [],
    sessionId: t.session_id,
    skewMs,
    browser,
  };
  for (const k in s) if (s[k] === undefined || s[k] === null) delete s[k];
  return s;
}

