// baton-auth/server: for the backends of an app, not for the browser. Plain JavaScript over Web
// `Request` and WebCrypto (Node 20+, and runtimes with the same globals); no wasm.
//
// `createVerifier` accepts Baton's access tokens in an API: the token's signature and claims
// (keys from the discovery document's JWKS, fetched again at once for an unknown `kid`), the
// DPoP proof a bound token needs (RFC 9449: method, URL, time, token hash, replay, a budget of
// proofs per key), and revocation (Baton's revocation feed, polled once a second per process,
// when the introspection secret is given).

const b64u = {
  decode(s) {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  },
  encode(bytes) {
    let bin = "";
    for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** The error a refused request rejects with: `code` and `status` as Baton's API uses them. */
export class VerifyError extends Error {
  constructor(code, status, message, { dpop = false, retryAfter } = {}) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
    this.status = status;
    this.dpop = dpop;
    this.retryAfter = retryAfter;
  }

  /** The `WWW-Authenticate` value of a 401 (RFC 6750 or RFC 9449), else undefined. */
  get wwwAuthenticate() {
    if (this.status !== 401) return undefined;
    if (this.dpop) {
      const error = this.code === "dpop_proof_invalid" ? "invalid_dpop_proof" : "invalid_token";
      return `DPoP error="${error}", algs="ES256 EdDSA"`;
    }
    return this.code === "token_missing" ? 'Bearer error="invalid_request"' : 'Bearer error="invalid_token"';
  }

  /** The answer body, in Baton's error shape. */
  toJSON() {
    const error = { code: this.code, message: this.message };
    if (this.retryAfter !== undefined) error.retry_after = this.retryAfter;
    return { error };
  }
}

const invalid = (why) => new VerifyError("token_invalid", 401, `the access token is invalid: ${why}`);
const proofError = (why) => new VerifyError("dpop_proof_invalid", 401, `DPoP proof refused: ${why}`, { dpop: true });
const unavailable = (why) => new VerifyError("unavailable", 503, `tokens cannot be checked now: ${why}`, { retryAfter: 1 });

/** How far a proof's `iat` may be from this clock, either way (seconds). */
const PROOF_WINDOW_S = 60;

/**
 * A verifier for Baton's access tokens.
 *
 * Options: `issuer` (the token's `iss`: Baton's `BATON_PUBLIC_URL`), `audience` (default
 * `"baton"`), `baseUrl` (where Baton is reached, default the issuer), `publicUrl` (this API's
 * own URL, which DPoP proofs name; default the request's), `introspectionSecret`
 * (`BATON_INTROSPECTION_TOKEN`: turns on the revocation feed), `revocations` (default true
 * with the secret), `leeway` (seconds on `exp`, default 5), `dpopProofsPerKey` (per minute,
 * default 3000; 0: no limit), `minRefetchMs` (least time between two key fetches for an
 * unknown kid, default 10 s), `fetch`.
 */
export function createVerifier(options) {
  return new Verifier(options);
}

export class Verifier {
  constructor(options = {}) {
    if (typeof options.issuer !== "string" || !/^https?:\/\//.test(options.issuer)) {
      throw new TypeError("createVerifier needs `issuer`, Baton's URL (BATON_PUBLIC_URL)");
    }
    this.issuer = options.issuer.replace(/\/+$/, "");
    this.audience = options.audience ?? "baton";
    this.baseUrl = (options.baseUrl ?? this.issuer).replace(/\/+$/, "");
    this.publicUrl = options.publicUrl?.replace(/\/+$/, "");
    this.secret = options.introspectionSecret;
    this.useFeed = options.revocations ?? Boolean(this.secret);
    if (this.useFeed && !this.secret) throw new TypeError("the revocation feed needs `introspectionSecret`");
    this.leeway = options.leeway ?? 5;
    this.proofsPerKey = options.dpopProofsPerKey ?? 3000;
    this.minRefetchMs = options.minRefetchMs ?? 10_000;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.keys = new Map(); // kid -> CryptoKey
    this.keysAt = 0;
    this.keysP = null;
    this.proofs = new Map(); // jkt + jti -> expiry (ms)
    this.budgets = new Map(); // jkt -> [window start (ms), count]
    this.revoked = new Map(); // sid -> until (ms)
    this.feedOkAt = 0;
    this.feedP = null;
    this.timer = null;
  }

  /** Stops the revocation feed's polling (the process can then exit). */
  close() {
    clearTimeout(this.timer);
    this.timer = null;
    this.closed = true;
  }

  async discovery() {
    this.docP ??= this.getJson(`${this.baseUrl}/.well-known/openid-configuration`).then(
      (doc) => {
        if (doc.issuer !== this.issuer) {
          throw unavailable(`Baton at ${this.baseUrl} names the issuer ${doc.issuer}, not ${this.issuer}`);
        }
        return doc;
      },
      (e) => {
        this.docP = null;
        throw e;
      },
    );
    return this.docP;
  }

  async getJson(url, headers = {}) {
    let res;
    try {
      res = await this.fetch(url, { headers: { accept: "application/json", ...headers } });
    } catch (e) {
      throw unavailable(`${url}: ${e.message}`);
    }
    if (!res.ok) throw unavailable(`${url} answered ${res.status}`);
    return res.json();
  }

  // The key of `kid`: from the cached JWKS, else fetched again (at most every minRefetchMs).
  async key(kid) {
    if (this.keys.has(kid)) return this.keys.get(kid);
    if (this.keysP) await this.keysP.catch(() => {});
    if (!this.keys.has(kid) && Date.now() - this.keysAt >= this.minRefetchMs) {
      this.keysP = this.loadKeys();
      await this.keysP;
    }
    const key = this.keys.get(kid);
    if (!key) throw invalid("signed by an unknown key");
    return key;
  }

  async loadKeys() {
    const doc = await this.discovery();
    const jwks = await this.getJson(doc.jwks_uri);
    this.keysAt = Date.now();
    const keys = new Map();
    for (const k of jwks.keys ?? []) {
      if (k.kty !== "OKP" || k.crv !== "Ed25519" || typeof k.kid !== "string") continue;
      const key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: k.x }, { name: "Ed25519" }, false, ["verify"]);
      keys.set(k.kid, key);
    }
    this.keys = keys;
  }

  /**
   * Verifies a Web `Request`: resolves to the token's claims, or rejects with a `VerifyError`.
   */
  async verifyRequest(request) {
    const url = new URL(request.url);
    return this.verify({
      method: request.method,
      url: this.publicUrl ? this.publicUrl + url.pathname : url.origin + url.pathname,
      authorization: request.headers.get("authorization"),
      dpop: request.headers.get("dpop"),
    });
  }

  /**
   * The check itself, from the parts of a request: `method`, `url` (without the query),
   * `authorization` and `dpop` header values.
   */
  async verify({ method, url, authorization, dpop }) {
    const m = /^(Bearer|DPoP) +([A-Za-z0-9_.~+/=-]+)$/i.exec(authorization?.trim() ?? "");
    if (!authorization) throw new VerifyError("token_missing", 401, "an access token is required");
    if (!m) throw invalid("malformed Authorization header");
    const scheme = m[1].toLowerCase() === "dpop" ? "DPoP" : "Bearer";
    const token = m[2];
    const claims = await this.token(token).catch((e) => {
      e.dpop = scheme === "DPoP";
      throw e;
    });
    const jkt = claims.cnf?.jkt;
    if (jkt && scheme !== "DPoP") throw proofError("this access token is bound to a DPoP key: send it as `Authorization: DPoP` with a proof");
    if (!jkt && scheme === "DPoP") throw proofError("this access token is not DPoP-bound: send it as `Authorization: Bearer`");
    if (jkt) await this.proof(dpop, { method, url, token, jkt });
    if (this.useFeed) {
      await this.feedReady();
      const until = this.revoked.get(claims.sid);
      if (until !== undefined && until > Date.now()) {
        throw new VerifyError("token_revoked", 401, "the session of this access token was signed out", { dpop: Boolean(jkt) });
      }
    }
    return claims;
  }

  async token(token) {
    const parts = token.split(".");
    if (parts.length !== 3) throw invalid("not a JWT");
    let header, claims;
    try {
      header = JSON.parse(text.decode(b64u.decode(parts[0])));
      claims = JSON.parse(text.decode(b64u.decode(parts[1])));
    } catch {
      throw invalid("not a JWT");
    }
    // The algorithm is pinned, never taken from the token.
    if (header.alg !== "EdDSA" || header.typ !== "at+jwt" || typeof header.kid !== "string") throw invalid("not a Baton access token");
    const key = await this.key(header.kid);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, b64u.decode(parts[2]), utf8.encode(`${parts[0]}.${parts[1]}`));
    if (!ok) throw invalid("bad signature");
    const now = Date.now() / 1000;
    for (const c of ["exp", "iat", "iss", "aud", "sub", "sid"]) if (claims[c] === undefined) throw invalid(`no ${c}`);
    if (claims.iss !== this.issuer) throw invalid("another issuer");
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.audience)) throw invalid("another audience");
    if (typeof claims.exp !== "number" || claims.exp + this.leeway < now) throw new VerifyError("token_expired", 401, "the access token has expired");
    return claims;
  }

  async proof(jws, { method, url, token, jkt }) {
    if (!jws) throw proofError("a DPoP-bound access token needs a DPoP proof");
    const parts = jws.split(".");
    if (parts.length !== 3 || jws.length > 4096) throw proofError("the DPoP header is not a JWS");
    let header, c;
    try {
      header = JSON.parse(text.decode(b64u.decode(parts[0])));
      c = JSON.parse(text.decode(b64u.decode(parts[1])));
    } catch {
      throw proofError("the DPoP header is not a JWS");
    }
    const jwk = header.jwk;
    if (header.typ !== "dpop+jwt" || !jwk || typeof jwk !== "object" || "d" in jwk) throw proofError("not a DPoP proof");
    let alg, key, members;
    if (header.alg === "ES256" && jwk.kty === "EC" && jwk.crv === "P-256") {
      alg = { name: "ECDSA", hash: "SHA-256" };
      members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
      key = await crypto.subtle.importKey("jwk", members, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]).catch(() => null);
    } else if (header.alg === "EdDSA" && jwk.kty === "OKP" && jwk.crv === "Ed25519") {
      alg = { name: "Ed25519" };
      members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
      key = await crypto.subtle.importKey("jwk", members, { name: "Ed25519" }, false, ["verify"]).catch(() => null);
    }
    if (!key) throw proofError("unsupported key or algorithm (ES256 with P-256, or EdDSA with Ed25519)");
    const ok = await crypto.subtle.verify(alg, key, b64u.decode(parts[2]), utf8.encode(`${parts[0]}.${parts[1]}`));
    if (!ok) throw proofError("bad signature");
    // RFC 7638: the thumbprint of the required members, in this order.
    const thumbprint = b64u.encode(await crypto.subtle.digest("SHA-256", utf8.encode(JSON.stringify(members))));
    if (thumbprint !== jkt) throw proofError("the DPoP proof is signed by another key than the token is bound to");
    if (c.htm !== method) throw proofError("htm is not the request's method");
    if (typeof c.htu !== "string" || normalizeUrl(c.htu) !== normalizeUrl(url)) throw proofError(`htu is not ${url}`);
    const now = Date.now();
    if (typeof c.iat !== "number" || Math.abs(c.iat - now / 1000) > PROOF_WINDOW_S) throw proofError("iat is not within 60 seconds of now");
    const ath = b64u.encode(await crypto.subtle.digest("SHA-256", utf8.encode(token)));
    if (c.ath !== ath) throw proofError("ath is not the access token's hash");
    if (typeof c.jti !== "string" || c.jti.length < 1 || c.jti.length > 256) throw proofError("jti missing or too long");
    this.purgeProofs(now);
    const id = `${jkt}\u0000${c.jti}`;
    // A replay is refused before the key's budget is counted.
    if (this.proofs.has(id)) throw proofError("the DPoP proof was used before: make a new one per request");
    if (this.proofsPerKey > 0) {
      const [start, n] = this.budgets.get(jkt) ?? [now, 0];
      const fresh = now - start >= 60_000;
      if (!fresh && n >= this.proofsPerKey) {
        throw new VerifyError("rate_limited", 429, "too many requests with this DPoP key", { retryAfter: Math.ceil((start + 60_000 - now) / 1000) });
      }
      this.budgets.set(jkt, fresh ? [now, 1] : [start, n + 1]);
    }
    this.proofs.set(id, (c.iat + PROOF_WINDOW_S + 1) * 1000);
  }

  purgeProofs(now) {
    if (now - (this.purgedAt ?? 0) < 10_000) return;
    this.purgedAt = now;
    for (const [id, exp] of this.proofs) if (exp < now) this.proofs.delete(id);
    for (const [jkt, [start]] of this.budgets) if (now - start >= 60_000) this.budgets.delete(jkt);
  }

  // The revocation feed: the first answer before the first check; then polled every second.
  // A feed silent for 30 s makes checks fail (503) rather than accept what may be signed out.
  async feedReady() {
    if (!this.feedP) {
      this.feedP = this.poll();
      this.feedP.catch(() => {
        this.feedP = null;
      });
    }
    await this.feedP;
    if (Date.now() - this.feedOkAt > 30_000) throw unavailable("Baton's revocation feed has not answered for 30 s");
  }

  async poll() {
    const doc = await this.discovery();
    const endpoint = doc.revocations_endpoint;
    if (!endpoint) throw unavailable("Baton has no revocation feed (introspection is off)");
    const since = this.cursor === undefined ? "" : `?since=${this.cursor}`;
    const answer = await this.getJson(endpoint + since, { authorization: `Bearer ${this.secret}` });
    const now = Date.now();
    for (const { sid } of answer.revoked) this.revoked.set(sid, now + answer.keep * 1000);
    for (const [sid, until] of this.revoked) if (until <= now) this.revoked.delete(sid);
    this.cursor = answer.next;
    this.feedOkAt = now;
    if (!this.closed && !this.timer) this.schedule();
  }

  schedule() {
    this.timer = setTimeout(async () => {
      this.timer = null;
      await this.poll().catch(() => {});
      if (!this.closed && !this.timer) this.schedule();
    }, 1000);
    this.timer.unref?.();
  }

  /**
   * Express or Connect middleware: the claims go to `req.baton`; a refused request gets its
   * status, `WWW-Authenticate` and `{error: {code, message}}`. `publicUrl` (or the request's
   * protocol and host, which Express takes from trusted proxies per its `trust proxy`) names
   * the URL proofs must carry.
   */
  express() {
    return (req, res, next) => {
      const base = this.publicUrl ?? `${req.protocol}://${req.get("host")}`;
      this.verify({
        method: req.method,
        url: base + (req.originalUrl ?? req.url).split("?")[0],
        authorization: req.get("authorization"),
        dpop: req.get("dpop"),
      }).then(
        (claims) => {
          req.baton = claims;
          next();
        },
        (e) => respond(e, (status, headers, body) => res.status(status).set(headers).json(body), next),
      );
    };
  }

  /** A Fastify `onRequest` hook: the claims go to `request.baton`. */
  fastify() {
    return async (request, reply) => {
      // Fastify 4 names the Host header (with its port) `hostname`, Fastify 5 `host`.
      const base = this.publicUrl ?? `${request.protocol}://${request.host ?? request.hostname}`;
      try {
        request.baton = await this.verify({
          method: request.method,
          url: base + request.url.split("?")[0],
          authorization: request.headers.authorization,
          dpop: request.headers.dpop,
        });
      } catch (e) {
        respond(e, (status, headers, body) => reply.code(status).headers(headers).send(body));
        return reply;
      }
    };
  }
}

// Sends a VerifyError as Baton's API would; anything else goes on as an error.
function respond(e, send, next) {
  if (!(e instanceof VerifyError)) {
    if (next) return next(e);
    throw e;
  }
  const headers = { "cache-control": "no-store" };
  if (e.wwwAuthenticate) headers["www-authenticate"] = e.wwwAuthenticate;
  if (e.retryAfter !== undefined) headers["retry-after"] = String(e.retryAfter);
  send(e.status, headers, e.toJSON());
}

// Scheme and host without case, default ports dropped, no query or fragment.
function normalizeUrl(u) {
  try {
    const url = new URL(u);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// createBatonServer: server-rendered apps. The app serves Baton's endpoints on its own origin
// (`proxy`), so the browser's cookies are first-party and reach the app's server renders too;
// `session` tells any server code who is signed in, refreshing when needed.
//
// Cookies on the app's origin, all HttpOnly (no script reads them), SameSite=Lax, Path=/, and
// Secure unless the app is on plain-HTTP localhost:
//   baton_refresh  the refresh token (Baton's own cookie, its path widened to the app)
//   baton_access   the access token, for server renders (until it expires)
//   baton_device   the browser's device id, so a refresh by the server is the browser's
// SSR sessions are Bearer sessions: a key the browser holds cannot sign for the server, so the
// proxy does not pass DPoP proofs on, and the cookies' rules protect the tokens instead.

const COOKIE = { refresh: "baton_refresh", access: "baton_access", device: "baton_device" };
// Request headers the proxy passes to Baton (the rest of the app's request stays with the app).
const PASSED = ["accept", "authorization", "content-type", "idempotency-key", "origin", "user-agent", "x-device-id", "x-forwarded-for"];
const DEVICE_ID = /^[A-Za-z0-9_-]{16,128}$/;

function parseCookies(header) {
  const out = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out[part.slice(0, i).trim()] ??= decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

export function createBatonServer(options) {
  return new BatonServer(options);
}

export class BatonServer {
  constructor(options = {}) {
    if (typeof options.baseUrl !== "string" || !/^https?:\/\//.test(options.baseUrl)) {
      throw new TypeError("createBatonServer needs `baseUrl`, where baton-server listens");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.prefix = options.prefix ?? "/auth/";
    this.margin = options.refreshMargin ?? 30;
    this.secure = options.secure;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.verifierOptions = options;
    this.inflight = new Map(); // refresh token -> the refresh in flight
  }

  /** Stops the verifier's revocation polling. */
  close() {
    this.verifierP?.then((v) => v.close(), () => {});
  }

  // The verifier of access tokens, its issuer read from Baton's discovery document when not given.
  verifier() {
    this.verifierP ??= (async () => {
      let issuer = this.verifierOptions.issuer;
      if (!issuer) {
        const res = await this.fetch(`${this.baseUrl}/.well-known/openid-configuration`);
        if (!res.ok) throw unavailable(`Baton at ${this.baseUrl} answered ${res.status}`);
        issuer = (await res.json()).issuer;
      }
      return new Verifier({ ...this.verifierOptions, issuer, baseUrl: this.baseUrl, fetch: this.fetch });
    })();
    this.verifierP.catch(() => (this.verifierP = null));
    return this.verifierP;
  }

  cookie(request, name, value, maxAge) {
    const url = new URL(request.url);
    const local = url.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
    const secure = this.secure ?? !local;
    let c = `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Lax`;
    if (maxAge !== undefined) c += `; Max-Age=${Math.max(0, Math.floor(maxAge))}`;
    return secure ? `${c}; Secure` : c;
  }

  // Baton's refresh cookie, as the app's: its path widened to the app, SameSite=Lax, its
  // lifetime (a browser-session cookie, or Max-Age) kept.
  rewrite(request, setCookie) {
    const m = /^baton_refresh=([^;]*)/.exec(setCookie);
    if (!m) return null;
    const age = /;\s*Max-Age=(\d+)/i.exec(setCookie);
    return this.cookie(request, COOKIE.refresh, decodeURIComponent(m[1]), age ? Number(age[1]) : undefined);
  }

  // The cookies that go with a token response (or with its absence, `cleared`).
  tokenCookies(request, headers, body, device) {
    if (body && typeof body.access_token === "string") {
      headers.append("set-cookie", this.cookie(request, COOKIE.access, body.access_token, body.expires_in));
      if (device) headers.append("set-cookie", this.cookie(request, COOKIE.device, device, 400 * 86400));
    }
  }

  cleared(request, headers) {
    for (const name of [COOKIE.access, COOKIE.refresh]) headers.append("set-cookie", this.cookie(request, name, "", 0));
  }

  /**
   * Forwards a request under `prefix` (default `/auth/`) to Baton and answers with Baton's
   * answer, its cookies made the app's. Other requests resolve to `null`.
   */
  async proxy(request, { clientIp } = {}) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(this.prefix)) return null;
    const headers = new Headers();
    for (const h of PASSED) {
      const v = request.headers.get(h);
      if (v !== null) headers.set(h, v);
    }
    if (clientIp) headers.set("x-forwarded-for", [headers.get("x-forwarded-for"), clientIp].filter(Boolean).join(", "));
    const jar = parseCookies(request.headers.get("cookie"));
    // Only Baton's own cookie goes to Baton: the app's other cookies are none of its business.
    if (jar[COOKIE.refresh]) headers.set("cookie", `${COOKIE.refresh}=${encodeURIComponent(jar[COOKIE.refresh])}`);
    const method = request.method;
    const body = method === "GET" || method === "HEAD" ? undefined : await request.arrayBuffer();
    // Baton's path: the app's prefix (default `/auth/`) stands for Baton's `/auth/`.
    const path = `/auth/${url.pathname.slice(this.prefix.length)}`;
    const res = await this.fetch(this.baseUrl + path + url.search, { method, headers, body, redirect: "manual" });
    const out = new Headers();
    for (const [k, v] of res.headers) {
      if (k === "set-cookie" || k === "content-length" || k === "content-encoding" || k === "transfer-encoding" || k === "connection") continue;
      out.set(k, v);
    }
    for (const c of res.headers.getSetCookie?.() ?? []) {
      const mine = this.rewrite(request, c);
      if (mine) out.append("set-cookie", mine);
    }
    const bytes = await res.arrayBuffer();
    const type = res.headers.get("content-type") ?? "";
    if (res.ok && type.includes("json") && bytes.byteLength) {
      let parsed = null;
      try {
        parsed = JSON.parse(text.decode(bytes));
      } catch {}
      const device = request.headers.get("x-device-id");
      this.tokenCookies(request, out, parsed, device && DEVICE_ID.test(device) ? device : undefined);
    }
    // Signed out (here or by a refused refresh): the server renders forget the session too.
    if ((res.ok && (path === "/auth/logout" || path === "/auth/logout-all")) || (path === "/auth/refresh" && res.status === 401)) {
      out.append("set-cookie", this.cookie(request, COOKIE.access, "", 0));
    }
    const empty = method === "HEAD" || res.status === 204 || res.status === 304 || !bytes.byteLength;
    return new Response(empty ? null : bytes, { status: res.status, statusText: res.statusText, headers: out });
  }

  /**
   * Who is signed in on this request: `{ session, headers }`. `session` is `{ user: { id,
   * roles, emailVerified }, accessToken, expiresAt }` or `null`; `headers` holds the Set-Cookie
   * lines the app must add to its response (when a refresh happened), empty otherwise. With
   * `{ refresh: false }` (code that cannot set cookies, such as a React server component) a
   * token about to expire is still the session, and an expired one is none.
   */
  async session(request, { refresh: mayRefresh = true } = {}) {
    const headers = new Headers();
    const jar = parseCookies(request.headers.get("cookie"));
    const verifier = await this.verifier();
    const access = jar[COOKIE.access];
    if (access) {
      try {
        const claims = await verifier.verify({ method: "GET", url: this.baseUrl, authorization: `Bearer ${access}` });
        if (!mayRefresh || claims.exp - Date.now() / 1000 > this.margin) return { session: sessionOf(claims, access), headers };
      } catch (e) {
        if (!(e instanceof VerifyError) || e.status === 503) throw e;
        if (e.code === "token_revoked") {
          this.cleared(request, headers);
          return { session: null, headers };
        }
      }
    }
    const refresh = jar[COOKIE.refresh];
    const device = jar[COOKIE.device];
    // Without the browser's device id a refresh here would not be the browser's (and a server
    // with strict device binding would end the session): the browser refreshes instead.
    if (!mayRefresh || !refresh || !device || !DEVICE_ID.test(device)) return { session: null, headers };
    const answer = await this.refresh(refresh, device);
    if (!answer.ok) {
      if (answer.status === 401) this.cleared(request, headers);
      return { session: null, headers };
    }
    for (const c of answer.cookies) {
      const mine = this.rewrite(request, c);
      if (mine) headers.append("set-cookie", mine);
    }
    this.tokenCookies(request, headers, answer.body, device);
    const claims = await verifier.verify({ method: "GET", url: this.baseUrl, authorization: `Bearer ${answer.body.access_token}` });
    return { session: sessionOf(claims, answer.body.access_token), headers };
  }

  // One refresh per refresh token in this process, however many renders ask at once. Other
  // processes asking with the same token get the same successor from Baton (the reuse grace,
  // and the Idempotency-Key every holder of this token computes alike).
  refresh(token, device) {
    let p = this.inflight.get(token);
    if (!p) {
      p = (async () => {
        const key = b64u.encode(await crypto.subtle.digest("SHA-256", utf8.encode(`baton-ssr:${token}`)));
        const res = await this.fetch(`${this.baseUrl}/auth/refresh`, {
          method: "POST",
          headers: { cookie: `${COOKIE.refresh}=${encodeURIComponent(token)}`, "x-device-id": device, "idempotency-key": key, accept: "application/json" },
        });
        const body = await res.json().catch(() => null);
        if (res.status >= 500 || res.status === 429) throw unavailable(`Baton answered the refresh with ${res.status}`);
        return { ok: res.ok, status: res.status, body, cookies: res.headers.getSetCookie?.() ?? [] };
      })();
      this.inflight.set(token, p);
      const done = () => setTimeout(() => this.inflight.get(token) === p && this.inflight.delete(token), 2000).unref?.();
      p.then(done, done);
    }
    return p;
  }
}

function sessionOf(claims, accessToken) {
  return {
    user: { id: claims.sub, roles: claims.roles ?? [], emailVerified: Boolean(claims.email_verified) },
    accessToken,
    expiresAt: claims.exp * 1000,
  };
}
