// baton-auth/mfa: two-factor sign-in. Importing this entry point adds the methods below to every
// Baton client; an app without a second factor does not load them.
import { Baton, BatonError } from "./index.js";
import { send } from "./authed.js";

const MFA = Symbol.for("baton-auth.mfa");
const ENROLLING = Symbol("enrolling");
// `{ totp }`, `{ recoveryCode }` or `{ passkey }` (baton-auth/passkeys' `passkeyFactor()`) as
// the server takes it.
function second(f) {
  if (f && typeof f.totp === "string") return { totp: f.totp };
  if (f && typeof f.recoveryCode === "string") return { recovery_code: f.recoveryCode };
  if (f && f.passkey && f.passkey.challenge_id) return f.passkey;
  throw new BatonError("invalid_options", "give { totp }, { recoveryCode } or { passkey }");
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
