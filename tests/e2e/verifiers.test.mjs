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
import { ROOT, startServer, launchBrowser, signIn, uniqueEmail, unpackedPackage, startOrdersService, totp } from "./harness.mjs";
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

test("24. Express (baton-auth/server), FastAPI (baton_verify) and Rust (baton-verify) accept the page's DPoP-bound calls, refuse copies and signed-out sessions, and ride through a key rotation", async () => {
  const server = await startServer({
    BATON_INTROSPECTION_TOKEN: SECRET,
    BATON_ACCESS_TTL: "15m",
    BATON_RATE_LIMITS: "relaxed",
  });
  const serverModule = await import(join(unpackedPackage(), "server.js"));
  const expressApi = await startExpress({ baton: server.url, secret: SECRET, origin: server.url, server: serverModule });
  const fastapi = await startFastapi(server.url, server.url);
  const rust = await startOrdersService(server.url, SECRET);
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
    const c = await context.newPage();
    await c.goto(`${server.url}/?api=${encodeURIComponent(rust.url)}`);
    await c.waitForFunction(() => document.body.dataset.state === "signed-in");
    const apis = [
      [a, `${expressApi.url}/orders`, "express"],
      [b, `${fastapi.url}/orders`, "fastapi"],
      [c, `${rust.url}/orders`, "rust"],
    ];
    const access = await a.evaluate(() => window.__demo.baton.getAccessToken());
    const claims = JSON.parse(Buffer.from(access.split(".")[1], "base64url"));
    assert.ok(claims.cnf?.jkt, "the page's session is DPoP-bound");
    for (const [page, url, api] of apis) {
      const r = await call(page, url);
      assert.equal(r.status, 200, `${api}: ${JSON.stringify(r)}`);
      if (api !== "rust") assert.deepEqual(r.body, { api, user: claims.sub });
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
    rust.stop();
    await server.stop();
  }
});

test("the verifier examples of docs/api.md are the files the tests run", async () => {
  const { readFileSync } = await import("node:fs");
  const doc = readFileSync(join(ROOT, "docs/api.md"), "utf8");
  for (const [file, lang] of [
    ["tests/verify/express-app.mjs", "js"],
    ["tests/verify/fastapi_app.py", "python"],
    ["verify/examples/demo-api.rs", "rust"],
  ]) {
    const body = readFileSync(join(ROOT, file), "utf8").trimEnd();
    assert.ok(doc.includes("```" + lang + "\n" + body + "\n```"), `docs/api.md does not show ${file} as it is`);
  }
});

test("25. baton-auth/server as a Fastify hook and on Web Requests: Bearer and DPoP-bound tokens, replays, the error answers", async () => {
  const server = await startServer({ BATON_INTROSPECTION_TOKEN: SECRET });
  const { createVerifier, VerifyError } = await import(join(unpackedPackage(), "server.js"));
  const { default: Fastify } = await import("fastify");
  const { generateKeyPair, exportJWK, SignJWT } = await import("jose");
  const verifier = createVerifier({ issuer: server.url, introspectionSecret: SECRET });
  const app = Fastify();
  app.addHook("onRequest", verifier.fastify());
  app.get("/orders", async (request) => ({ user: request.baton.sub }));
  const api = await app.listen({ port: 0, host: "127.0.0.1" });
  try {
    const post = (path, body, headers = {}) =>
      fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-device-id": "node-test", ...headers },
        body: JSON.stringify(body),
      });
    const email = uniqueEmail("fastify");
    assert.equal((await post("/auth/register", { email, password: "correct horse" })).status, 201);
    // A Bearer session.
    const bearer = await (await post("/auth/login", { email, password: "correct horse" })).json();
    let r = await fetch(`${api}/orders`, { headers: { authorization: `Bearer ${bearer.access_token}` } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).user, bearer.user.id);
    r = await fetch(`${api}/orders`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("www-authenticate"), 'Bearer error="invalid_request"');
    assert.equal((await r.json()).error.code, "token_missing");

    // A DPoP-bound session, with a key of this test's own.
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwk = await exportJWK(publicKey);
    const proof = async (htm, htu, token) => {
      const claims = { htm, htu, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000) };
      if (token) claims.ath = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token))).toString("base64url");
      return new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk }).sign(privateKey);
    };
    const bound = await (await post("/auth/login", { email, password: "correct horse" }, { DPoP: await proof("POST", `${server.url}/auth/login`) })).json();
    assert.equal(bound.token_type, "DPoP");
    const p = await proof("GET", `${api}/orders`, bound.access_token);
    const call = (dpop) => fetch(`${api}/orders`, { headers: { authorization: `DPoP ${bound.access_token}`, ...(dpop ? { dpop } : {}) } });
    assert.equal((await call(p)).status, 200);
    r = await call(p);
    assert.equal(r.status, 401, "a replayed proof");
    assert.match(r.headers.get("www-authenticate"), /^DPoP error="invalid_dpop_proof"/);
    assert.equal((await r.json()).error.code, "dpop_proof_invalid");
    assert.equal((await call(null)).status, 401);

    // On Web Requests (any runtime): the same checks, rejections as VerifyError.
    const request = async (headers) => new Request(`${api}/orders?page=2`, { headers });
    const claims = await verifier.verifyRequest(
      await request({ authorization: `DPoP ${bound.access_token}`, dpop: await proof("GET", `${api}/orders`, bound.access_token) }),
    );
    assert.equal(claims.sub, bound.user.id);
    await assert.rejects(verifier.verifyRequest(await request({ authorization: `Bearer ${bound.access_token}` })), (e) => {
      assert.ok(e instanceof VerifyError);
      assert.equal(e.status, 401);
      assert.equal(e.code, "dpop_proof_invalid");
      return true;
    });
    // Signed out: refused within about a second, through the feed.
    assert.equal((await post("/auth/logout", {}, { authorization: `Bearer ${bearer.access_token}` })).status, 204);
    const started = Date.now();
    for (;;) {
      const res = await fetch(`${api}/orders`, { headers: { authorization: `Bearer ${bearer.access_token}` } });
      if (res.status === 401) {
        assert.equal((await res.json()).error.code, "token_revoked");
        break;
      }
      assert.ok(Date.now() - started < 2000, "still accepted 2 s after the sign-out");
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    verifier.close();
    await app.close();
    await server.stop();
  }
});

test("24. Express and FastAPI check roles and assurance levels as docs/api.md shows: 403 without, 200 once an administrator gives the role and after a step-up", async () => {
  const server = await startServer({ BATON_INTROSPECTION_TOKEN: SECRET, BATON_RATE_LIMITS: "relaxed" });
  const serverModule = await import(join(unpackedPackage(), "server.js"));
  const expressApi = await startExpress({ baton: server.url, secret: SECRET, origin: server.url, server: serverModule });
  const fastapi = await startFastapi(server.url, server.url);
  try {
    const post = (path, body) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const email = uniqueEmail("roles");
    const creds = { email, password: "correct horse" };
    assert.equal((await post("/auth/register", creds)).status, 201);
    const reports = async (token) =>
      Promise.all([expressApi, fastapi].map(async (api) => (await fetch(`${api.url}/reports`, { headers: { authorization: `Bearer ${token}` } })).status));
    let t = await (await post("/auth/login", creds)).json();
    assert.deepEqual(t.user.roles, []);
    assert.deepEqual(await reports(t.access_token), [403, 403]);
    // The operator's admin token, then the role.
    const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
    const made = spawnSync(bin, ["admin", "token", "create", "--name", "roles-test", "--scopes", "users:write"], {
      env: { ...process.env, BATON_DATABASE_URL: server.databaseUrl, BATON_LOG: "warn" },
      encoding: "utf8",
    });
    assert.equal(made.status, 0, made.stderr);
    const admin = made.stdout.split("\n")[0].trim();
    const r = await fetch(`${server.url}/admin/users/${t.user.id}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ roles: ["admin"] }),
    });
    assert.equal(r.status, 200);
    t = await (await post("/auth/login", creds)).json();
    assert.deepEqual(t.user.roles, ["admin"]);
    assert.deepEqual(await reports(t.access_token), [200, 200]);

    // Level 2 for payouts: 403 step_up_required until a step-up with a second factor.
    const payouts = async (token) =>
      Promise.all([expressApi, fastapi].map(async (api) => {
        const res = await fetch(`${api.url}/payouts`, { headers: { authorization: `Bearer ${token}` } });
        const body = await res.json();
        return res.status === 403 ? (body.error ?? body.detail).code : res.status;
      }));
    assert.deepEqual(await payouts(t.access_token), ["step_up_required", "step_up_required"]);
    const authed = (path, body) =>
      fetch(`${server.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${t.access_token}` },
        body: JSON.stringify(body),
      }).then((res) => res.json());
    const enrolled = await authed("/auth/mfa/totp/enroll", {});
    const confirmed = await authed("/auth/mfa/totp/confirm", { factor_id: enrolled.factor_id, code: totp(enrolled.secret, 0) });
    assert.equal(confirmed.recovery_codes.length, 10);
    const up = await authed("/auth/mfa/step-up", { totp: totp(enrolled.secret, 1) });
    assert.deepEqual(await payouts(up.access_token), [200, 200]);
  } finally {
    expressApi.stop();
    fastapi.stop();
    await server.stop();
  }
});
