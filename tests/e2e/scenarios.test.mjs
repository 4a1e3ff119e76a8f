// The eight end-to-end scenarios: demo page, real baton-server, real Chromium, packed package.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ROOT, startServer, launchBrowser, signIn, uniqueEmail, countRequests, screenshot, packedTarball,
} from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser.close();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Calls the protected API from the page so it learns that its session was revoked. A
// background call of the page (the session and audit lists reload after each refresh) may
// have found out first and signed it out already: then there is nothing left to click.
async function callOrAlreadySignedOut(page) {
  try {
    await page.click("#btn-ping", { timeout: 3000 });
  } catch (e) {
    const state = await page.evaluate(() => document.body.dataset.state);
    if (state !== "signed-out") throw e;
  }
}

async function withServer(env, fn) {
  const server = await startServer(env);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

test("1. short lifetimes: 30 s of continuous API calls without a failure, refreshes before expiry", async () => {
  await withServer({ BATON_ACCESS_TTL: "5s" }, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const refreshes = countRequests(context, "/auth/refresh");
    await page.goto(`${url}/?margin=3`);
    await signIn(page, uniqueEmail("continuous"));
    await screenshot(page, "demo-signed-in");
    const result = await page.evaluate(async () => {
      const b = window.__demo.baton;
      let ok = 0;
      const failures = [];
      const late = [];
      let expiry = b.session.expiresAt;
      b.on("refreshed", (d) => {
        if (Date.now() >= expiry) late.push(Date.now() - expiry);
        expiry = d.session.expiresAt;
      });
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        try {
          const r = await b.fetch("/api/ping");
          r.status === 200 ? ok++ : failures.push(r.status);
        } catch (e) {
          failures.push(e.code);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      // A refresh may be on the wire right now: let it land before counting (the next one is
      // about 2 s away).
      await new Promise((r) => setTimeout(r, 500));
      return { ok, failures, late, refreshCount: b.status().refreshCount };
    });
    assert.deepEqual(result.failures, [], "no call failed");
    assert.ok(result.ok > 100, `calls made: ${result.ok}`);
    assert.deepEqual(result.late, [], "every refresh happened before the token expired");
    // 5 s tokens refreshed 3 s early: about every 2 s.
    assert.ok(result.refreshCount >= 10 && result.refreshCount <= 20, `refreshes: ${result.refreshCount}`);
    assert.equal(refreshes.n, result.refreshCount, "one POST /auth/refresh per rotation");
    await context.close();
  });
});

test("2. expired token and 20 concurrent calls: exactly one refresh, 20 successes", async () => {
  await withServer({ BATON_ACCESS_TTL: "3s" }, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await signIn(page, uniqueEmail("burst"));
    // The page "sleeps": its client stops, and the access token expires meanwhile.
    await page.evaluate(() => window.__demo.baton.dispose());
    await sleep(3_500);
    const refreshes = countRequests(context, "/auth/refresh");
    const statuses = await page.evaluate(async () => {
      await window.__demo.start("body");
      const b = window.__demo.baton;
      const results = await Promise.all(
        Array.from({ length: 20 }, () => b.fetch("/api/ping").then((r) => r.status, (e) => e.code)),
      );
      return results;
    });
    assert.deepEqual(statuses, Array(20).fill(200));
    assert.equal(refreshes.n, 1, "exactly one POST /auth/refresh");
    await context.close();
  });
});

test("3. a 401 is retried once after a refresh; a second 401 goes back to the caller", async () => {
  await withServer({}, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await signIn(page, uniqueEmail("retry"));
    const refreshes = countRequests(context, "/auth/refresh");
    let pings = 0;
    let fail = 1; // the API says "token expired" once, as if the token died early
    await page.route("**/api/ping", async (route) => {
      pings++;
      if (fail !== 0) {
        if (fail > 0) fail--;
        return route.fulfill({
          status: 401,
          contentType: "application/json",
          headers: { "www-authenticate": 'Bearer error="invalid_token"' },
          body: JSON.stringify({ error: { code: "token_expired", message: "expired early" } }),
        });
      }
      return route.continue();
    });
    const first = await page.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status));
    assert.equal(first, 200);
    assert.equal(pings, 2, "original and one retry");
    assert.equal(refreshes.n, 1);

    pings = 0;
    fail = -1; // now every call is refused
    const second = await page.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status));
    assert.equal(second, 401, "the second 401 is returned");
    assert.equal(pings, 2, "retried exactly once, no loop");
    assert.equal(refreshes.n, 2);
    assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-in");
    await context.close();
  });
});

test("4. two tabs needing a refresh at once: one refresh, both keep working", async () => {
  await withServer({ BATON_ACCESS_TTL: "6s" }, async ({ url }) => {
    const context = await browser.newContext();
    const a = await context.newPage();
    await a.goto(url);
    await signIn(a, uniqueEmail("tabs"));
    const b = await context.newPage();
    await b.goto(url);
    await b.waitForFunction(() => document.body.dataset.state === "signed-in");
    const refreshes = countRequests(context, "/auth/refresh");
    // Both tabs hold the same token, due for refresh at the same instant (half-life: 3 s).
    const expiry = await a.evaluate(() => window.__demo.baton.session.expiresAt);
    await sleep(Math.max(0, expiry - Date.now()) - 1_000);
    const [ra, rb] = await Promise.all([
      a.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status)),
      b.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status)),
    ]);
    assert.deepEqual([ra, rb], [200, 200]);
    assert.equal(refreshes.n, 1, "one refresh for both tabs");
    for (const p of [a, b]) {
      assert.equal(await p.evaluate(() => document.body.dataset.state), "signed-in");
      const outs = await p.evaluate(() => window.__demo.events.filter((e) => e.name === "signedOut").length);
      assert.equal(outs, 0);
    }
    const [sa, sb] = await Promise.all([a, b].map((p) => p.evaluate(() => window.__demo.baton.session.sessionId)));
    assert.equal(sa, sb);
    await context.close();
  });
});

test("5. logout-all in tab A signs out tab B (same browser) and the other device", async () => {
  await withServer({}, async ({ url }) => {
    const email = uniqueEmail("logoutall");
    const context = await browser.newContext();
    const a = await context.newPage();
    await a.goto(url);
    await signIn(a, email);
    const b = await context.newPage();
    await b.goto(url);
    await b.waitForFunction(() => document.body.dataset.state === "signed-in");
    // Another device: its own browser profile and session.
    const other = await browser.newContext();
    const c = await other.newPage();
    await c.goto(url);
    await signIn(c, email, { register: false });

    await a.click("#btn-logout-all");
    await a.waitForFunction(() => document.body.dataset.state === "signed-out");
    await b.waitForFunction(() => document.body.dataset.state === "signed-out", null, { timeout: 5000 });
    assert.ok(await b.isVisible("#auth-form"), "tab B shows the login form");
    const bEvents = await b.evaluate(() => window.__demo.events.map((e) => e.name));
    assert.ok(bEvents.includes("signedOut"), bEvents.join());

    // The other device finds out at its next call: the session was revoked.
    await callOrAlreadySignedOut(c);
    await c.waitForFunction(() => document.body.dataset.state === "signed-out", null, { timeout: 5000 });
    const cEvents = await c.evaluate(() => window.__demo.events.map((e) => e.name));
    assert.ok(cEvents.includes("sessionExpired") && cEvents.includes("signedOut"), cEvents.join());
    await screenshot(b, "demo-after-logout");
    await context.close();
    await other.close();
  });
});

// A Bearer session (`dpop: false`): reuse detection is what stops the thief. A DPoP-bound
// session refuses the thief before that, and stays signed in (scenario 17).
test("6. a refresh token replayed from outside after rotation revokes a Bearer session", async () => {
  await withServer({}, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${url}/?dpop=off`);
    await signIn(page, uniqueEmail("replay"));
    const stolen = await page.evaluate(() => JSON.parse(localStorage.getItem("baton-demo:body")).refreshToken);
    assert.ok(stolen);
    await page.evaluate(() => window.__demo.baton.refresh());
    // The attacker replays the spent token from another machine.
    const r = await fetch(`${url}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-device-id": "attacker-laptop" },
      body: JSON.stringify({ refresh_token: stolen }),
    });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, "refresh_token_reused");
    await callOrAlreadySignedOut(page);
    await page.waitForFunction(() => document.body.dataset.state === "signed-out", null, { timeout: 5000 });
    const names = await page.evaluate(() => window.__demo.events.map((e) => e.name));
    assert.ok(names.includes("sessionExpired"), names.join());
    await context.close();
  });
});

test("7. consumer install: npm pack -> Vite project -> vite build -> works in Chromium", async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-vite-"));
  const tgz = packedTarball();
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", tgz], { cwd: dir });
  writeFileSync(join(dir, "index.html"), `<!doctype html><html><body data-result="pending"><script type="module" src="/main.js"></script></body></html>`);
  writeFileSync(
    join(dir, "main.js"),
    `import { Baton, isBatonError } from "baton-auth";
const baton = await Baton.create({ baseUrl: location.origin, storage: "memory" });
const email = "vite-" + Date.now() + "@example.com";
try {
  await baton.register(email, "correct horse battery");
  await baton.login(email, "correct horse battery");
  const res = await baton.fetch("/api/ping");
  const body = await res.json();
  let typed = false;
  try { await baton.login(email, "wrong password!"); } catch (e) { typed = isBatonError(e) && e.code === "invalid_credentials"; }
  document.body.dataset.result = res.status === 200 && body.ok && typed ? "ok" : "bad:" + res.status;
} catch (e) {
  document.body.dataset.result = "error:" + (e && e.code);
}
`,
  );
  execFileSync(join(ROOT, "tests/node_modules/.bin/vite"), ["build", "--logLevel", "warn"], { cwd: dir, stdio: "inherit" });
  const built = readFileSync(join(dir, "dist/index.html"), "utf8");
  assert.match(built, /<script type="module"/);
  await withServer({ BATON_STATIC_DIR: join(dir, "dist") }, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.result !== "pending", null, { timeout: 15000 });
    assert.equal(await page.evaluate(() => document.body.dataset.result), "ok");
    await context.close();
  });
});

test("8. cookie transport: the refresh token is never readable from JavaScript", async () => {
  await withServer({}, async ({ url }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await signIn(page, uniqueEmail("cookie"), { transport: "cookie" });
    const cookieOf = async () => (await context.cookies()).find((c) => c.name === "baton_refresh");
    const before = await cookieOf();
    assert.ok(before && before.httpOnly && before.sameSite === "Strict" && before.path === "/auth");
    const seen = async () =>
      page.evaluate(() => ({
        cookie: document.cookie,
        storage: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
      }));
    let js = await seen();
    assert.ok(!js.cookie.includes(before.value) && !js.storage.includes(before.value));
    assert.ok(!js.cookie.includes("baton_refresh"));
    await page.evaluate(() => window.__demo.baton.refresh());
    const afterRefresh = await cookieOf();
    assert.notEqual(afterRefresh.value, before.value, "the cookie rotated");
    js = await seen();
    assert.ok(!js.storage.includes(afterRefresh.value));
    const status = await page.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status));
    assert.equal(status, 200);
    await context.close();
  });
});
