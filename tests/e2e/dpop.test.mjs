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

// Where the page keeps its key in IndexedDB: a P-256 key where earlier versions of the package
// keep theirs, an Ed25519 key under a name of its own.
const P256_NAME = "baton-auth:dpop-key";
const ED25519_NAME = "baton-auth:dpop-key-ed25519";

// What the page keeps in IndexedDB: under each name, whether the private key can be exported
// and the public JWK (null where nothing is stored); `key`, the one the page uses (P-256 first).
const storedKeys = (page) =>
  page.evaluate(
    (names) =>
      new Promise((ok, fail) => {
        const r = indexedDB.open("baton-auth", 1);
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const store = r.result.transaction("kv").objectStore("kv");
          const gets = names.map((n) => store.get(n));
          gets[gets.length - 1].onsuccess = async () => {
            const out = {};
            for (const [i, n] of names.entries()) {
              const pair = gets[i].result;
              out[n] = pair ? { extractable: pair.privateKey.extractable, jwk: await crypto.subtle.exportKey("jwk", pair.publicKey) } : null;
            }
            ok(out);
          };
        };
      }),
    [P256_NAME, ED25519_NAME],
  );
const storedKey = async (page) => {
  const keys = await storedKeys(page);
  return keys[P256_NAME] || keys[ED25519_NAME];
};

const deleteStoredKey = (page) =>
  page.evaluate(
    (names) =>
      new Promise((ok, fail) => {
        const r = indexedDB.open("baton-auth", 1);
        r.onsuccess = () => {
          const tx = r.result.transaction("kv", "readwrite");
          for (const n of names) tx.objectStore("kv").delete(n);
          tx.oncomplete = () => ok();
          tx.onerror = () => fail(tx.error);
        };
      }),
    [P256_NAME, ED25519_NAME],
  );

// WebCrypto without Ed25519, as in browsers before it shipped (Chromium before 137).
const withoutEd25519 = () => {
  const generateKey = SubtleCrypto.prototype.generateKey;
  SubtleCrypto.prototype.generateKey = function (alg, ...rest) {
    if ((alg.name || alg) === "Ed25519") return Promise.reject(new DOMException("Algorithm: Unrecognized name", "NotSupportedError"));
    return generateKey.call(this, alg, ...rest);
  };
};

// The `alg` of every DPoP proof the page sends, as it sends them.
function proofAlgs(page) {
  const algs = [];
  page.on("request", (r) => {
    const p = r.headers()["dpop"];
    if (p) algs.push(JSON.parse(Buffer.from(p.split(".")[0], "base64url")).alg);
  });
  return algs;
}

// The key the page uses, checked to be the one its access token is bound to.
async function boundStoredKey(page) {
  const key = await storedKey(page);
  const { kty, crv, x, y } = key.jwk;
  const access = await page.evaluate(() => window.__demo.baton.getAccessToken());
  assert.equal(await calculateJwkThumbprint({ kty, crv, x, y }), claimsOf(access).cnf.jkt);
  return key;
}

// The statuses of a call, a refresh and another call (each with a proof).
const callRefreshCall = (page) =>
  page.evaluate(async () => {
    const b = window.__demo.baton;
    const first = (await b.fetch("/api/ping")).status;
    await b.refresh();
    return [first, (await b.fetch("/api/ping")).status];
  });

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
    const key = await boundStoredKey(page);
    assert.equal(key.extractable, false);
    // This browser has Ed25519: the key is one, under its own name, and nothing is stored
    // where earlier versions of the package look for their P-256 key (they cannot sign with
    // an Ed25519 one).
    const keys = await storedKeys(page);
    assert.equal(keys[ED25519_NAME].jwk.crv, "Ed25519");
    assert.equal(keys[P256_NAME], null);

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
    await boundStoredKey(page);
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
    // As this browser runs it (an Ed25519 key); as one without Uint8Array's own base64 encoder
    // (Chromium before 140, Safari before 18.2), where the package encodes by itself; and as
    // one whose WebCrypto has no Ed25519 (Chromium before 137), where the key is P-256.
    for (const [encoder, ed25519] of [
      [true, true],
      [false, true],
      [true, false],
    ]) {
      const page = await browser.newPage();
      if (!encoder) await page.addInitScript(() => delete Uint8Array.prototype.toBase64);
      if (!ed25519) await page.addInitScript(withoutEd25519);
      const mine = [];
      page.on("request", (r) => {
        const p = r.headers()["dpop"];
        if (p) mine.push({ proof: p, method: r.method(), url: r.url().split(/[?#]/)[0], alg: ed25519 ? "EdDSA" : "ES256" });
      });
      await page.goto(server.url);
      assert.equal(await page.evaluate(() => typeof Uint8Array.prototype.toBase64), encoder ? "function" : "undefined");
      await signIn(page, uniqueEmail("jose"));
      await page.evaluate(async () => {
        for (const path of ["/api/ping", "/api/ping?x=1#y", "/api/ping"]) {
          const r = await window.__demo.baton.fetch(path);
          if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
        }
      });
      assert.ok(mine.length >= 4, "the sign-in and the calls carried proofs");
      proofs.push(...mine);
      await page.close();
    }
    // Every proof has an id of its own (one page's ids share a random part and differ by a count).
    const ids = proofs.map(({ proof }) => JSON.parse(Buffer.from(proof.split(".")[1], "base64url")).jti);
    assert.equal(new Set(ids).size, ids.length);
    const { jwtVerify, EmbeddedJWK } = await import("jose");
    for (const { proof, method, url, alg } of proofs) {
      const header = JSON.parse(Buffer.from(proof.split(".")[0], "base64url"));
      assert.equal(header.alg, alg);
      // Only the public members of the key: nothing a JOSE library reads as a restriction.
      assert.deepEqual(Object.keys(header.jwk).sort(), alg === "EdDSA" ? ["crv", "kty", "x"] : ["crv", "kty", "x", "y"]);
      const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: "dpop+jwt", algorithms: [alg] });
      assert.equal(payload.htm, method);
      assert.equal(payload.htu, url);
    }
    // PyJWT, with the key taken from the proof's header.
    const script = [
      "import json, sys, jwt",
      "proof = sys.argv[1]",
      "alg = jwt.get_unverified_header(proof)['alg']",
      "key = jwt.PyJWK(jwt.get_unverified_header(proof)['jwk'], algorithm=alg)",
      "print(json.dumps(jwt.decode(proof, key.key, algorithms=[alg])))",
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

test("38. a P-256 key stored by a browser without Ed25519 goes on signing once the browser has it", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    // WebCrypto without Ed25519 until the page is told the browser was updated.
    await page.addInitScript(`if (!localStorage.getItem("test:updated")) (${withoutEd25519})();`);
    const algs = proofAlgs(page);
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dpop-p256"));
    assert.equal((await storedKey(page)).jwk.crv, "P-256");
    const jkt = claimsOf(await page.evaluate(() => window.__demo.baton.getAccessToken())).cnf.jkt;
    await page.evaluate(() => localStorage.setItem("test:updated", "1"));
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state === "signed-in");
    algs.length = 0;
    assert.deepEqual(await callRefreshCall(page), [200, 200]);
    // The session's key is still the stored P-256 one, proofs and refreshed token alike.
    assert.ok(algs.length >= 3);
    assert.ok(algs.every((a) => a === "ES256"), algs.join());
    assert.equal((await storedKey(page)).jwk.crv, "P-256");
    assert.equal(claimsOf(await page.evaluate(() => window.__demo.baton.getAccessToken())).cnf.jkt, jkt);
    await context.close();
  } finally {
    await server.stop();
  }
});

test("39. a tab of an earlier version beside this one: one clean sign-out, then both on the earlier version's P-256 key", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const algs = proofAlgs(page);
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dpop-mixed"));
    assert.equal((await storedKey(page)).jwk.crv, "Ed25519");
    // A tab of an earlier version finds no key where it looks, and stores a P-256 one there.
    await page.evaluate(
      (name) =>
        new Promise(async (ok, fail) => {
          const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
          const r = indexedDB.open("baton-auth", 1);
          r.onsuccess = () => {
            const tx = r.result.transaction("kv", "readwrite");
            tx.objectStore("kv").put(pair, name);
            tx.oncomplete = () => ok();
            tx.onerror = () => fail(tx.error);
          };
        }),
      P256_NAME,
    );
    // This tab now takes that key: the session, bound to the Ed25519 key, ends cleanly.
    const code = await page.evaluate(() => window.__demo.baton.refresh().then(() => "ok", (e) => e.code));
    assert.equal(code, "dpop_proof_invalid");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    // Signed in again, the session is bound to the P-256 key both versions use.
    await signIn(page, uniqueEmail("dpop-mixed-again"));
    assert.equal((await boundStoredKey(page)).jwk.crv, "P-256");
    algs.length = 0;
    assert.deepEqual(await callRefreshCall(page), [200, 200]);
    assert.ok(algs.length >= 3 && algs.every((a) => a === "ES256"), algs.join());
    await context.close();
  } finally {
    await server.stop();
  }
});
