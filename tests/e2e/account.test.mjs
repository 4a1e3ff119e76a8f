// The account in Chromium, with baton-auth/account: a password changed in one browser signs the
// other one out and keeps this one; roles reach `session.roles`; the account is deleted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, startServer, launchBrowser, signIn, uniqueEmail, countRequests } from "./harness.mjs";

let browser;
let server;
before(async () => {
  browser = await launchBrowser();
  // Several sign-ins from this one address within a minute.
  server = await startServer({ BATON_RATE_LIMITS: "relaxed" });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const PASSWORD = "correct horse battery";

// `baton-server admin token create`, on the server's machine and database.
function adminToken(name, scopes) {
  const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
  const out = execFileSync(bin, ["admin", "token", "create", "--name", name, "--scopes", scopes], {
    env: { ...process.env, BATON_DATABASE_URL: server.databaseUrl, BATON_LOG: "warn" },
    encoding: "utf8",
  });
  return out.split("\n")[0].trim();
}

async function signedInPage(email, register) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await signIn(page, email, { register });
  await page.evaluate(() => import("/pkg/dist/account.js"));
  return { context, page };
}

test("30. a password changed in one browser signs the other out; this one stays", async () => {
  const email = uniqueEmail("account");
  const a = await signedInPage(email, true);
  const b = await signedInPage(email, false);
  const changes = countRequests(a.context, "/auth/password/change");
  const refreshes = countRequests(a.context, "/auth/refresh");

  // A wrong current password is the answer: not sent again, nothing refreshed.
  const wrong = await a.page.evaluate(async () => {
    try {
      await window.__demo.baton.changePassword("wrong horse battery", "new horse battery");
      return "resolved";
    } catch (e) {
      return `${e.code} ${e.status}`;
    }
  });
  assert.equal(wrong, "invalid_credentials 401");
  assert.equal(changes.n, 1);
  assert.equal(refreshes.n, 0);

  await a.page.evaluate((p) => window.__demo.baton.changePassword(p, "new horse battery"), PASSWORD);
  // The other browser finds out at its next call: its refresh is refused, it is signed out.
  const ended = await b.page.evaluate(async () => {
    const baton = window.__demo.baton;
    const out = new Promise((ok) => baton.on("signedOut", ok));
    const r = await baton.fetch("/api/ping").catch((e) => e.code);
    return { ping: r.status ?? r, signedOut: await out, session: baton.session };
  });
  assert.equal(ended.ping, 401);
  assert.equal(ended.signedOut.reason, "sessionEnded");
  assert.equal(ended.session, null);
  await b.page.waitForFunction(() => document.body.dataset.state === "signed-out");
  // This browser goes on, and refreshes.
  const here = await a.page.evaluate(async () => {
    const baton = window.__demo.baton;
    const ping = (await baton.fetch("/api/ping")).status;
    await baton.refresh();
    return { ping, signedIn: baton.session !== null, after: (await baton.fetch("/api/ping")).status };
  });
  assert.deepEqual(here, { ping: 200, signedIn: true, after: 200 });
  // The new password signs in, the old one does not.
  await b.page.fill("#email", email);
  await b.page.fill("#password", "new horse battery");
  await b.page.click("#btn-login");
  await b.page.waitForFunction(() => document.body.dataset.state === "signed-in");
  await a.context.close();
  await b.context.close();
});

test("30. roles given by an administrator reach session.roles; metadata; the account is deleted", async () => {
  const email = uniqueEmail("roles");
  const a = await signedInPage(email, true);
  const before = await a.page.evaluate(() => window.__demo.baton.session.roles);
  assert.deepEqual(before, []);
  const token = adminToken(`e2e-${Date.now()}`, "users:read,users:write");
  const found = await (await fetch(`${server.url}/admin/users?email=${encodeURIComponent(email)}`, {
    headers: { Authorization: `Bearer ${token}` },
  })).json();
  const id = found.users[0].id;
  const patched = await fetch(`${server.url}/admin/users/${id}`, {
    method: "PATCH",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ roles: ["editor"] }),
  });
  assert.equal(patched.status, 200);
  const result = await a.page.evaluate(async () => {
    const baton = window.__demo.baton;
    await baton.refresh();
    const user = await baton.updateUser({ userMetadata: { theme: "dark" } });
    const again = await baton.getUser();
    return { roles: baton.session.roles, meta: user.user_metadata, roles2: again.roles };
  });
  assert.deepEqual(result, { roles: ["editor"], meta: { theme: "dark" }, roles2: ["editor"] });

  const deleted = await a.page.evaluate(async (p) => {
    const baton = window.__demo.baton;
    await baton.deleteAccount({ password: p });
    return baton.session;
  }, PASSWORD);
  assert.equal(deleted, null);
  await a.page.waitForFunction(() => document.body.dataset.state === "signed-out");
  const login = await fetch(`${server.url}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(login.status, 401);
  await a.context.close();
});
