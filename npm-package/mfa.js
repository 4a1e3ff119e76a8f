// baton-auth/mfa: two-factor sign-in. Importing this entry point adds the methods below to every
// Baton client; an app without a second factor does not load them.
import { Baton, BatonError } from "./index.js";

const MFA = Symbol.for("baton-auth.mfa");
const ENROLLING = Symbol("enrolling");
const TOKEN = ["token_expired", "token_invalid", "token_revoked", "token_missing", "dpop_proof_invalid"];

const url = (baton, path) => new URL(path, new URL(baton.baseUrl, globalThis.location && location.href));

async function answer(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {}
  if (res.ok) return body;
  const e = (body && body.error) || {};
  const ra = res.headers.get("retry-after");
  throw new BatonError(e.code || "internal", e.message || `HTTP ${res.status}`, res.status, res.status === 429 || res.status >= 500, ra ? Number(ra) : undefined);
}

// As the signed-in user, without baton.fetch's own retry (a wrong code must count once); a
// token refused here is refreshed once.
async function send(baton, method, path, body, again) {
  const res = await baton.fetch(url(baton, path), {
    method,
    headers: { "Content-Type": "application/json" },
    body: method === "GET" ? undefined : JSON.stringify(body || {}),
    batonRetry: false,
  });
  if (res.status === 401 && !again) {
    const code = await res.clone().json().then((b) => b.error.code, () => "");
    if (TOKEN.includes(code)) {
      await baton.refresh();
      return send(baton, method, path, body, true);
    }
  }
  return answer(res);
}

// `{ totp }` or `{ recoveryCode }` as the server takes it.
function second(f) {
  if (f && typeof f.totp === "string") return { totp: f.totp };
  if (f && typeof f.recoveryCode === "string") return { recovery_code: f.recoveryCode };
  throw new BatonError("invalid_options", "give { totp } or { recoveryCode }");
}

Object.assign(Baton.prototype, {
  /** Finishes a sign-in that resolved to `{ mfaRequired }`; resolves to the session. */
  async verifyMfa(factor) {
    const pending = this[MFA];
    if (!pending) throw new BatonError("session_missing", "no sign-in is waiting for a second factor");
    const session = await this[Symbol.for("baton-auth.signIn")]("/auth/mfa/verify", { mfa_token: pending.token, ...second(factor) }, pending);
    delete this[MFA];
    return session;
  },

  /** Starts setting up TOTP: `{ factorId, secret, otpauthUrl }` for the authenticator app. */
  async enrollTotp() {
    const r = await send(this, "POST", "/auth/mfa/totp/enroll");
    this[ENROLLING] = r.factor_id;
    return { factorId: r.factor_id, secret: r.secret, otpauthUrl: r.otpauth_url };
  },

  /** Confirms the set-up with a code of the app; the recovery codes (show them once). */
  async confirmTotp(code, factorId = this[ENROLLING]) {
    const codes = (await send(this, "POST", "/auth/mfa/totp/confirm", { factor_id: factorId, code })).recovery_codes;
    delete this[ENROLLING];
    return codes;
  },

  /** Raises this session to level 2 for a while (`aal: 2` in its access tokens). */
  async stepUp(factor) {
    await send(this, "POST", "/auth/mfa/step-up", second(factor));
    // The next tokens say so.
    return this.refresh();
  },

  /** A new set of recovery codes, proven by a second factor now. */
  async newRecoveryCodes(factor) {
    return (await send(this, "POST", "/auth/mfa/recovery-codes", second(factor))).recovery_codes;
  },

  /** `{ factors: [{ id, kind, created_at }], recovery_codes_left }`. */
  mfaFactors() {
    return send(this, "GET", "/auth/mfa/factors");
  },

  /** Removes a factor; the session must be at level 2 (`stepUp` first). */
  async removeMfaFactor(id) {
    await send(this, "DELETE", `/auth/mfa/factors/${encodeURIComponent(id)}`);
  },
});
