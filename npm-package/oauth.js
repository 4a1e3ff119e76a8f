// baton-auth/oauth: sign-in through identity providers. Importing this entry point adds the
// methods below to every Baton client; an app without providers does not load them.
import { Baton, BatonError } from "./index.js";
import { send, url, answer } from "./authed.js";

const SIGN_IN = Symbol.for("baton-auth.signIn");
const here = () => location.href.split(/[?#]/)[0];

Object.assign(Baton.prototype, {
  /** `[{ name, display_name, kind }]`: the providers the server has, for sign-in buttons. */
  async identityProviders() {
    return (await answer(await fetch(url(this, "/auth/oauth/providers")))).providers;
  },

  /** Sends the browser to `provider`'s sign-in page; it comes back to `redirectTo` (this page). */
  signInWith(provider, o = {}) {
    const to = url(this, `/auth/oauth/${encodeURIComponent(provider)}/start`);
    to.searchParams.set("redirect_to", o.redirectTo || here());
    location.assign(to);
  },

  /**
   * On the page a provider sign-in returned to: trades its one-time code for the session (or
   * `{ mfaRequired }`), `{ linked }` after `linkIdentity`, or rejects with the flow's
   * `baton_error`; null on a page that is no return. The URL is cleaned first.
   */
  async handleRedirect(o) {
    const u = new URL(location.href), p = u.searchParams;
    const code = p.get("baton_code"), error = p.get("baton_error"), linked = p.get("baton_linked");
    if (!code && !error && !linked) return null;
    for (const k of [...p.keys()]) if (k.startsWith("baton_")) p.delete(k);
    history.replaceState(history.state, "", u);
    if (error) throw new BatonError(error, `the identity provider sign-in ended: ${error}`);
    if (linked) return { linked };
    return this[SIGN_IN]("/auth/oauth/exchange", { code }, o);
  },

  /** `[{ provider, subject, email, created_at, last_used_at }]`. */
  async listIdentities() {
    return (await send(this, "GET", "/auth/identities")).identities;
  },

  /** Adds `provider` to the signed-in account: the browser goes there and back to `redirectTo`. */
  async linkIdentity(provider, o = {}) {
    const res = await this.fetch(url(this, `/auth/identities/${encodeURIComponent(provider)}/link/start`), {
      method: "POST",
      credentials: "include",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ redirect_to: o.redirectTo || here() }),
    });
    location.assign((await answer(res)).url);
  },

  /** Rejects with `invalid_request` when it is the account's last way to sign in. */
  async unlinkIdentity(provider) {
    await send(this, "DELETE", `/auth/identities/${encodeURIComponent(provider)}`);
  },
});
