// DPoP (RFC 9449) in the browser: the session is bound to a non-extractable key kept in
// IndexedDB, so tokens copied out of the page are useless elsewhere, and a lost key ends the
// session cleanly.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import { startServer, launchBrowser, signIn, uniqueEmail, countRequests } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser.close();
});

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

// What the page keeps in IndexedDB: whether the private key can be exported, the public JWK.
const storedKey = (page) =>
  page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const r = indexedDB.open("baton-auth", 1);
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const get = r.result.transaction("kv").objectStore("kv").get("baton-auth:dpop-key");
          get.onsuccess = async () => {
            const pair = get.result;
            if (!pair) return ok(null);
            ok({ extractable: pair.privateKey.extractable, jwk: await crypto.subtle.exportKey("jwk", pair.publicKey) });
          };
          get.onerror = () => fail(get.error);
        };
      }),
  );

const deleteStoredKey = (page) =>
  page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const r = indexedDB.open("baton-auth", 1);
        r.onsuccess = () => {
          const tx = r.result.transaction("kv", "readwrite");
          tx.objectStore("kv").delete("baton-auth:dpop-key");
          tx.oncomplete = () => ok();
          tx.onerror = () => fail(tx.error);
        };
      }),
  );

// A thief's proof: a valid DPoP proof, by a key of the thief's own.
async function thiefProof(htm, htu, accessToken) {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const claims = { htm, htu, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000) };
  if (accessToken) {
    claims.ath = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken))).toString("base64url");
  }
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(publicKey) }).sign(privateKey);
}

async function errorCode(res) {
  const body = await res.json();
  return body.error && body.error.code;
}

test("17. tokens copied out of the page are refused outside the browser; the tab that holds the key goes on", async () => {
  const server = await startServer();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dpop"));
    const access = await page.evaluate(() => window.__demo.baton.getAccessToken());
    const { cnf } = claimsOf(access);
    assert.ok(cnf && cnf.jkt, "the access token names the key it is bound to");
    // The key: in IndexedDB, private part not extractable, and it is the one the token names.
    const key = await storedKey(page);
    assert.equal(key.extractable, false);
    const { kty, crv, x, y } = key.jwk;
    assert.equal(await calculateJwkThumbprint({ kty, crv, x, y }), cnf.jkt);

    // What XSS or an extension could copy: the stored refresh token and the device id.
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("baton-demo:body")));
    const device = await page.evaluate(() => window.__demo.baton.deviceId);
    const replay = (dpop) =>
      fetch(`${server.url}/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Device-ID": device, ...(dpop ? { DPoP: dpop } : {}) },
        body: JSON.stringify({ refresh_token: stored.refreshToken }),
      });
    for (const dpop of [null, await thiefProof("POST", `${server.url}/auth/refresh`)]) {
      const res = await replay(dpop);
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate"), /^DPoP /);
      assert.equal(await errorCode(res), "dpop_proof_invalid");
    }
    // The access token too, as Bearer or with the thief's proof.
    const me = (scheme, dpop) =>
      fetch(`${server.url}/auth/me`, { headers: { Authorization: `${scheme} ${access}`, ...(dpop ? { DPoP: dpop } : {}) } });
    assert.equal(await errorCode(await me("Bearer")), "dpop_proof_invalid");
    assert.equal(await errorCode(await me("DPoP", await thiefProof("GET", `${server.url}/auth/me`, access))), "dpop_proof_invalid");

    // The owner: refreshes and calls the API as before; nothing signed it out.
    const after = await page.evaluate(async () => {
      const baton = window.__demo.baton;
      await baton.refresh();
      const res = await baton.fetch("/auth/audit-log?limit=50");
      return { status: res.status, body: await res.json() };
    });
    assert.equal(after.status, 200);
    assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-in");
    const refused = after.body.events.filter((e) => e.type === "dpop_proof_refused");
    assert.equal(refused.length, 2, "each replay is a security event for the owner");
    assert.ok(!after.body.events.some((e) => e.type === "refresh_token_reused"));
    const ended = await page.evaluate(() => window.__demo.events.filter((e) => e.name === "sessionExpired").length);
    assert.equal(ended, 0);
  } finally {
    await server.stop();
  }
});

test("18. a key deleted from IndexedDB ends the session cleanly, with one refused refresh", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const refreshes = countRequests(context, "/auth/refresh");
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dpop-lost"));
    await deleteStoredKey(page);
    const code = await page.evaluate(() => window.__demo.baton.refresh().then(() => "ok", (e) => e.code));
    assert.equal(code, "dpop_proof_invalid");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    const expired = await page.evaluate(() => window.__demo.events.filter((e) => e.name === "sessionExpired").map((e) => e.detail.code));
    assert.deepEqual(expired, ["dpop_proof_invalid"]);
    // No loop: nothing more is sent, before or after a reload.
    await page.waitForTimeout(3000);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    await page.waitForTimeout(1000);
    assert.equal(refreshes.n, 1);
    // Signing in again makes and stores a new key.
    await signIn(page, uniqueEmail("dpop-again"));
    const key = await storedKey(page);
    const access = await page.evaluate(() => window.__demo.baton.getAccessToken());
    const { kty, crv, x, y } = key.jwk;
    assert.equal(await calculateJwkThumbprint({ kty, crv, x, y }), claimsOf(access).cnf.jkt);
    await context.close();
  } finally {
    await server.stop();
  }
});

test("19. the cookie transport is bound too: the copied HttpOnly cookie is refused without the key", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dpop-cookie"), { transport: "cookie" });
    const access = await page.evaluate(() => window.__demo.baton.getAccessToken());
    assert.ok(claimsOf(access).cnf);
    const cookie = (await context.cookies()).find((c) => c.name === "baton_refresh");
    assert.ok(cookie && cookie.httpOnly);
    const device = await page.evaluate(() => window.__demo.baton.deviceId);
    const res = await fetch(`${server.url}/auth/refresh`, {
      method: "POST",
      headers: { "X-Device-ID": device, Cookie: `baton_refresh=${cookie.value}` },
    });
    assert.equal(res.status, 401);
    assert.equal(await errorCode(res), "dpop_proof_invalid");
    const status = await page.evaluate(async () => {
      await window.__demo.baton.refresh();
      return (await window.__demo.baton.fetch("/auth/me")).status;
    });
    assert.equal(status, 200);
    await context.close();
  } finally {
    await server.stop();
  }
});

test("20. Bearer sessions where DPoP is off: on the server, or with `dpop: false` in the page", async () => {
  for (const [env, query] of [[{ BATON_DPOP: "off" }, ""], [{}, "?dpop=off"]]) {
    const server = await startServer(env);
    try {
      const page = await browser.newPage();
      await page.goto(server.url + query);
      await signIn(page, uniqueEmail("bearer"));
      const result = await page.evaluate(async () => {
        const baton = window.__demo.baton;
        await baton.refresh();
        const res = await baton.fetch("/auth/me");
        return { status: res.status, token: await baton.getAccessToken() };
      });
      assert.equal(result.status, 200, JSON.stringify(env) + query);
      assert.equal(claimsOf(result.token).cnf, undefined, JSON.stringify(env) + query);
      await page.close();
    } finally {
      await server.stop();
    }
  }
});

test("23. the page's DPoP proofs verify with jose's EmbeddedJWK and with PyJWT, as other backends check them", async () => {
  const server = await startServer();
  try {
    const proofs = [];
    // Twice: as this browser runs it, and as one without Uint8Array's own base64 encoder
    // (Chromium before 140, Safari before 18.2), where the package encodes by itself.
    for (const encoder of [true, false]) {
      const page = await browser.newPage();
      if (!encoder) await page.addInitScript(() => delete Uint8Array.prototype.toBase64);
      const mine = [];
      page.on("request", (r) => {
        const p = r.headers()["dpop"];
        if (p) mine.push({ proof: p, method: r.method(), url: r.url().split(/[?#]/)[0] });
      });
      await page.goto(server.url);
      assert.equal(await page.evaluate(() => typeof Uint8Array.prototype.toBase64), encoder ? "function" : "undefined");
      await signIn(page, uniqueEmail("jose"));
      await page.evaluate(async () => {
        for (const path of ["/api/ping", "/api/ping?x=1#y", "/api/ping"]) await window.__demo.baton.fetch(path);
      });
      assert.ok(mine.length >= 4, "the sign-in and the calls carried proofs");
      proofs.push(...mine);
      await page.close();
    }
    // Every proof has an id of its own (one page's ids share a random part and differ by a count).
    const ids = proofs.map(({ proof }) => JSON.parse(Buffer.from(proof.split(".")[1], "base64url")).jti);
    assert.equal(new Set(ids).size, ids.length);
    const { jwtVerify, EmbeddedJWK } = await import("jose");
    for (const { proof, method, url } of proofs) {
      const header = JSON.parse(Buffer.from(proof.split(".")[0], "base64url"));
      // Only the public members of the key: nothing a JOSE library reads as a restriction.
      assert.deepEqual(Object.keys(header.jwk).sort(), ["crv", "kty", "x", "y"]);
      const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: ["ES256"] });
      assert.equal(payload.htm, method);
      assert.equal(payload.htu, url);
    }
    // PyJWT, with the key taken from the proof's header.
    const script = [
      "import json, sys, jwt",
      "proof = sys.argv[1]",
      "key = jwt.PyJWK(jwt.get_unverified_header(proof)['jwk'], algorithm='ES256')",
      "print(json.dumps(jwt.decode(proof, key.key, algorithms=['ES256'])))",
    ].join("\n");
    const { spawnSync } = await import("node:child_process");
    const python = process.env.BATON_PYTHON || "/usr/bin/python3";
    for (const { proof, method } of proofs) {
      const r = spawnSync(python, ["-c", script, proof], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).htm, method);
    }
  } finally {
    await server.stop();
  }
});
