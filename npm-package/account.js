// baton-auth/account: the signed-in user's own account. Importing this entry point adds the
// methods below to every Baton client; an app that does not import it does not load them.
import { Baton } from "./index.js";
import { answer, send, url } from "./authed.js";

Object.assign(Baton.prototype, {
  /** The account as the server has it now: roles, metadata, the address and its proof. */
  async getUser() {
    return (await send(this, "GET", "/auth/me")).user;
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
