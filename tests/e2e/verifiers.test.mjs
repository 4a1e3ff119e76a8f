// Node and Python backends accept the tokens the browser package sends by default (DPoP-bound):
// an Express API with baton-auth/server and a FastAPI service with baton_verify (python/),
// both as docs/api.md shows them. They accept the page's calls, refuse the token copied out of
// the page, refuse it within about a second after a sign-out elsewhere, and refuse nothing
// while `baton-server keys rotate` runs under load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT, startServer, launchBrowser, signIn, uniqueEmail, unpackedPackage } from "./harness.mjs";
import { startExpress } from "../verify/express-app.mjs";

const SECRET = "verifiers-test-introspection-secret";
const PYTHON = process.env.BATON_PYTHON || "/usr/bin/python3";

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function startFastapi(baton, origin) {
  const port = await freePort();
  const child = spawn(PYTHON, [join(ROOT, "tests/verify/fastapi_app.py"), String(port)], {
    env: { ...process.env, PYTHONPATH: join(ROOT, "python"), BATON_URL: baton, BATON_INTROSPECTION_TOKEN: SECRET, APP_ORIGIN: origin },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const up = await fetch(`${url}/orders`).then(
      (r) => r.status === 401,
      () => false,
    );
    if (up) break;
    if (i > 100) throw new Error("the FastAPI service did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, stop: () => child.kill("SIGTERM") };
}

// A call through the page's client: the status, or the client's error code.
const call = (page, url) =>
  page.evaluate(async (u) => {
    try {
      const r = await window.__demo.baton.fetch(u);
      return { status: r.status, body: await r.json().catch(() => null) };
    } catch (e) {
      return { status: 0, code: e.code };
    }
  }, url);

test("24. Express (baton-auth/server) and FastAPI (baton_verify) accept the page's DPoP-bound calls, refuse copies and signed-out sessions, and ride through a key rotation", async () => {
  const server = await startServer({
    BATON_INTROSPECTION_TOKEN: SECRET,
    BATON_ACCESS_TTL: "15m",
    BATON_RATE_LIMITS: "relaxed",
  });
  const serverModule = await import(join(unpackedPackage(), "server.js"));
  const expressApi = await startExpress({ baton: server.url, secret: SECRET, origin: server.url, server: serverModule });
  const fastapi = await startFastapi(server.url, server.url);
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const email = uniqueEmail("verifiers");
    // One browser, one session: a tab per API (the demo page lets its client call one API).
    const a = await context.newPage();
    await a.goto(`${server.url}/?api=${encodeURIComponent(expressApi.url)}`);
    await signIn(a, email);
    const b = await context.newPage();
    await b.goto(`${server.url}/?api=${encodeURIComponent(fastapi.url)}`);
    await b.waitForFunction(() => document.body.dataset.state === "signed-in");
    const apis = [
      [a, `${expressApi.url}/orders`, "express"],
      [b, `${fastapi.url}/orders`, "fastapi"],
    ];
    const access = await a.evaluate(() => window.__demo.baton.getAccessToken());
    const claims = JSON.parse(Buffer.from(access.split(".")[1], "base64url"));
    assert.ok(claims.cnf?.jkt, "the page's session is DPoP-bound");
    for (const [page, url, api] of apis) {
      const r = await call(page, url);
      assert.equal(r.status, 200, `${api}: ${JSON.stringify(r)}`);
      assert.deepEqual(r.body, { api, user: claims.sub });
    }

    // The token copied out of the page, replayed from elsewhere: without the key it is nothing.
    for (const [, url, api] of apis) {
      for (const authorization of [`DPoP ${access}`, `Bearer ${access}`]) {
        const r = await fetch(url, { headers: { authorization } });
        assert.equal(r.status, 401, `${api} accepted a copied token (${authorization.split(" ")[0]})`);
        assert.match(r.headers.get("www-authenticate"), /^DPoP /);
      }
    }

    // A key rotation under load: calls to both APIs, with refreshes for tokens of the new
    // key, while the new key is published and starts signing. Nothing may be refused. The key
    // is published 11 s ahead here (2 minutes by default): longer than the verifiers wait
    // between two key fetches for an unknown kid (10 s).
    const rotate = spawnSync(process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server"), ["keys", "rotate"], {
      env: { ...process.env, BATON_DATABASE_URL: server.databaseUrl, BATON_KEY_PUBLISH_AHEAD: "11s" },
      encoding: "utf8",
    });
    assert.equal(rotate.status, 0, rotate.stderr);
    const newKid = rotate.stdout.split(/\s+/)[3].replace(/:$/, "");
    const refusals = [];
    let kids = new Set();
    const until = Date.now() + 16000;
    for (let i = 0; Date.now() < until; i++) {
      if (i % 3 === 0) await a.evaluate(() => window.__demo.baton.refresh());
      const token = await a.evaluate(() => window.__demo.baton.getAccessToken());
      kids.add(JSON.parse(Buffer.from(token.split(".")[0], "base64url")).kid);
      const results = await Promise.all(apis.flatMap(([page, url]) => [call(page, url), call(page, url)]));
      for (const r of results) if (r.status !== 200) refusals.push(r);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(refusals, [], "calls refused during the key rotation");
    assert.ok(kids.has(newKid), `the page never got a token of the new key (${[...kids]})`);

    // Signed out from another device: both APIs refuse the page's token within about a second,
    // long before it expires.
    const phone = await (await browser.newContext()).newPage();
    await phone.goto(server.url);
    await signIn(phone, email, { register: false });
    await phone.click("#btn-logout-all");
    await phone.waitForFunction(() => document.body.dataset.state === "signed-out");
    const signedOut = Date.now();
    for (const [page, url, api] of apis) {
      for (;;) {
        const r = await call(page, url);
        if (r.status !== 200) break;
        const after = Date.now() - signedOut;
        assert.ok(after < 2000, `${api} still accepted the session ${after} ms after the sign-out`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await browser.close();
    expressApi.stop();
    fastapi.stop();
    await server.stop();
  }
});

test("the verifier examples of docs/api.md are the files the tests run", async () => {
  const { readFileSync } = await import("node:fs");
  const doc = readFileSync(join(ROOT, "docs/api.md"), "utf8");
  for (const [file, lang] of [
    ["tests/verify/express-app.mjs", "js"],
    ["tests/verify/fastapi_app.py", "python"],
  ]) {
    const body = readFileSync(join(ROOT, file), "utf8").trimEnd();
    assert.ok(doc.includes("```" + lang + "\n" + body + "\n```"), `docs/api.md does not show ${file} as it is`);
  }
});
