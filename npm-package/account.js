// baton-auth/account: the signed-in user's own account. Importing this entry point adds the
// methods below to every Baton client; an app that does not import it does not load them.
import { Baton, BatonError } from "./index.js";

// 401 codes about the access token itself: refreshed once and sent again. Any other 401 (a
// wrong current password) is the answer: sent again it would count twice toward the lockout.
const TOKEN = ["token_expired", "token_invalid", "token_revoked", "token_missing", "dpop_proof_invalid"];

function url(baton, path) {
  return new URL(path, new URL(baton.baseUrl, globalThis.location && location.href));
}

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

// A call as the signed-in user: baton.fetch (token, DPoP proof, device id) without its own
// retry after a 401; a token refused here is refreshed once.
async function send(baton, method, path, body, again) {
  const res = await baton.fetch(url(baton, path), {
    method,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
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

Object.assign(Baton.prototype, {
  /** The account as the server has it now: roles, metadata, the address and its proof. */
  async getUser() {
    const res = await this.fetch(url(this, "/auth/me"));
    return (await answer(res)).user;
  },

  /** A new password; every other session of the user is signed out, this one stays. */
  async changePassword(current, next) {
    await send(this, "POST", "/auth/password/change", { current_password: current, new_password: next });
  },

  /** Mails a link to `newEmail`; the address changes once it is opened (`confirmEmailChange`). */
  async changeEmail(newEmail) {
    await send(this, "POST", "/auth/email/change", { new_email: newEmail });
  },

  /** Confirms the change with the link's `email_change_token`; signed in or not. */
  async confirmEmailChange(token) {
    const res = await fetch(url(this, "/auth/email/change/confirm"), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Device-ID": this.deviceId },
      body: JSON.stringify({ token }),
    });
    await answer(res);
    // The session's address is the new one from the next token on.
    if (this.session) await this.refresh();
  },

  /** Replaces the user's own metadata (a JSON object of at most 4 KB); the account. */
  async updateUser({ userMetadata }) {
    return (await send(this, "PATCH", "/auth/me", { user_metadata: userMetadata })).user;
  },

  /** Deletes the account (the password, or a sign-in of at most 5 minutes ago without one); signs out here. */
  async deleteAccount({ password } = {}) {
    await send(this, "DELETE", "/auth/me", password === undefined ? {} : { password });
    await this.logout().catch(() => {});
  },
});
