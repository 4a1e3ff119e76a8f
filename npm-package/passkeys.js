// baton-auth/passkeys: passkeys (WebAuthn). Importing this entry point adds the methods below
// to every Baton client; an app without passkeys does not load them.
import { Baton, BatonError } from "./index.js";
import { send, url, answer } from "./authed.js";

const PKC = globalThis.PublicKeyCredential;
const SIGN_IN = Symbol.for("baton-auth.signIn");
// A conditional (autofill) request is renewed before its 5-minute ceremony ends.
const RENEW = 270e3;

const bytes = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const text = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const ids = (list) => list && list.map((c) => ({ ...c, id: bytes(c.id) }));

// WebAuthn's JSON forms, with the browser's own parsers where it has them.
function creation(o) {
  if (PKC.parseCreationOptionsFromJSON) return PKC.parseCreationOptionsFromJSON(o);
  return { ...o, challenge: bytes(o.challenge), user: { ...o.user, id: bytes(o.user.id) }, excludeCredentials: ids(o.excludeCredentials) };
}
function request(o) {
  if (PKC.parseRequestOptionsFromJSON) return PKC.parseRequestOptionsFromJSON(o);
  return { ...o, challenge: bytes(o.challenge), allowCredentials: ids(o.allowCredentials) };
}
function json(c) {
  if (c.toJSON) return c.toJSON();
  const r = c.response, out = { clientDataJSON: text(r.clientDataJSON) };
  if (r.attestationObject) out.attestationObject = text(r.attestationObject);
  else Object.assign(out, { authenticatorData: text(r.authenticatorData), signature: text(r.signature), userHandle: r.userHandle && text(r.userHandle) });
  return { id: c.id, rawId: text(c.rawId), type: c.type, response: out, clientExtensionResults: c.getClientExtensionResults() };
}

// A sign-in ceremony answered by a passkey the user picks: { challenge_id, credential }.
async function assertion(baton, o = {}) {
  if (!Baton.passkeysSupported()) throw new BatonError("invalid_options", "this browser has no passkeys (WebAuthn)");
  for (;;) {
    // The ceremony is bound to this browser's device id, which the sign-in sends too.
    const headers = { "Content-Type": "application/json" };
    if (typeof baton.deviceId === "string") headers["X-Device-ID"] = baton.deviceId;
    const res = await fetch(url(baton, "/auth/passkeys/login/options"), { method: "POST", headers, body: "{}" });
    const { challenge_id, options } = await answer(res);
    const ac = new AbortController();
    const stop = () => ac.abort(o.signal.reason);
    if (o.signal) o.signal.aborted ? stop() : o.signal.addEventListener("abort", stop);
    const timer = o.autofill && setTimeout(() => ac.abort(RENEW), RENEW);
    try {
      const mediation = o.autofill ? "conditional" : undefined;
      const c = await navigator.credentials.get({ publicKey: request(options), mediation, signal: ac.signal });
      return { challenge_id, credential: json(c) };
    } catch (e) {
      if (ac.signal.reason !== RENEW) throw e;
    } finally {
      clearTimeout(timer);
      if (o.signal) o.signal.removeEventListener("abort", stop);
    }
  }
}

/** Whether this browser can create and use passkeys. */
Baton.passkeysSupported = () => !!(PKC && globalThis.navigator && navigator.credentials);

Object.assign(Baton.prototype, {
  /** Creates a passkey for the signed-in user (the browser asks them); resolves to it. */
  async registerPasskey(o = {}) {
    if (!Baton.passkeysSupported()) throw new BatonError("invalid_options", "this browser has no passkeys (WebAuthn)");
    const name = o.name;
    const { challenge_id, options } = await send(this, "POST", "/auth/passkeys/register/options", name ? { name } : {});
    const c = await navigator.credentials.create({ publicKey: creation(options), signal: o.signal });
    return (await send(this, "POST", "/auth/passkeys/register/verify", { challenge_id, credential: json(c) })).passkey;
  },

  /**
   * Signs in with a passkey the user picks (no email asked); `{ autofill: true }` offers them
   * in the page's `autocomplete="username webauthn"` field instead of a dialog.
   */
  async signInWithPasskey(o = {}) {
    const body = await assertion(this, o);
    return this[SIGN_IN]("/auth/passkeys/login/verify", body, o);
  },

  /** A passkey's answer for `verifyMfa` or `stepUp` (baton-auth/mfa): `{ passkey }`. */
  async passkeyFactor(o) {
    return { passkey: await assertion(this, o) };
  },

  /** `[{ id, name, created_at, last_used_at }]`. */
  async listPasskeys() {
    return (await send(this, "GET", "/auth/passkeys")).passkeys;
  },

  async renamePasskey(id, name) {
    return (await send(this, "PATCH", `/auth/passkeys/${encodeURIComponent(id)}`, { name })).passkey;
  },

  async removePasskey(id) {
    await send(this, "DELETE", `/auth/passkeys/${encodeURIComponent(id)}`);
  },
});
