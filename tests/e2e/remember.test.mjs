// `rememberMe`: without it a session ends with the browser session (like a session cookie),
// with it the session survives a browser restart. Both refresh transports; a real profile on
// disk, closed and launched again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchProfile, uniqueEmail } from "./harness.mjs";

/** In a page of the demo origin: a Baton client on `key`, signed in when `login` is given. */
async function client(page, { key, transport, login }) {
  return page.evaluate(
    async ({ key, transport, login }) => {
      const { Baton } = await import("baton-auth");
      const b = await Baton.create({ baseUrl: location.origin, storageKey: key, refreshTransport: transport });
      if (login) {
        await b.register(login.email, "correct horse battery");
        await b.login(login.email, "correct horse battery", { rememberMe: login.remember });
      }
      let refreshed = null;
      if (b.session) {
        refreshed = await b.refresh().then(() => true, (e) => e.code);
      }
      const out = { signedIn: !!b.session, refreshed, stored: localStorage.getItem(key) !== null };
      b.dispose();
      return out;
    },
    { key, transport, login },
  );
}

test("12. rememberMe: false ends with the browser; rememberMe: true survives a restart", async () => {
  const server = await startServer();
  try {
    for (const transport of ["body", "cookie"]) {
      for (const remember of [false, true]) {
        const label = `${transport}, rememberMe: ${remember}`;
        const profile = mkdtempSync(join(tmpdir(), "baton-profile-"));
        const key = `remember-test:${transport}`;
        let ctx = await launchProfile(profile);
        let page = await ctx.newPage();
        await page.goto(server.url);
        const login = { email: uniqueEmail(`remember-${transport}`), remember };
        assert.deepEqual(await client(page, { key, transport, login }), {
          signedIn: true, refreshed: true, stored: true,
        }, label);
        // Another tab of the same browser session shares the session.
        const other = await ctx.newPage();
        await other.goto(server.url);
        assert.equal((await client(other, { key, transport })).signedIn, true, `${label}: second tab`);
        if (transport === "cookie") {
          const c = (await ctx.cookies()).find((c) => c.name === "baton_refresh");
          assert.ok(c, `${label}: no refresh cookie`);
          if (remember) assert.ok(c.expires > Date.now() / 1000 + 3600, `${label}: ${c.expires}`);
          else assert.equal(c.expires, -1, `${label}: the refresh cookie outlives the browser`);
        }
        await ctx.close();

        ctx = await launchProfile(profile);
        page = await ctx.newPage();
        await page.goto(server.url);
        const after = await client(page, { key, transport });
        if (remember) {
          assert.deepEqual(after, { signedIn: true, refreshed: true, stored: true }, `${label}: after restart`);
        } else {
          // Signed out, and the tokens are gone from storage.
          assert.deepEqual(after, { signedIn: false, refreshed: null, stored: false }, `${label}: after restart`);
        }
        await ctx.close();
      }
    }
  } finally {
    await server.stop();
  }
});
