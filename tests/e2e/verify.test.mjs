// Other backends accepting Baton's tokens: Node with `jose` and Python with PyJWT verify access
// tokens against a running baton-server (keys found through the discovery document), and
// introspection tells them when a session was signed out before its token expired.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { ROOT, startServer, uniqueEmail } from "./harness.mjs";

const SECRET = "verify-test-introspection-secret";
const PYTHON = process.env.BATON_PYTHON || "/usr/bin/python3";

async function post(url, body, headers = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-device-id": "verify-test", ...headers },
    body: JSON.stringify(body),
  });
}

function python(base, token, audience = "baton") {
  const r = spawnSync(PYTHON, [join(ROOT, "tests/verify/verify.py"), base, token, audience], { encoding: "utf8" });
  return { ok: r.status === 0, claims: r.status === 0 ? JSON.parse(r.stdout) : null, err: r.stderr };
}

async function introspect(base, token) {
  const r = await fetch(`${base}/auth/introspect`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }),
  });
  assert.equal(r.status, 200);
  return r.json();
}

test("14. Node (jose) and Python (PyJWT) verify Baton's tokens; introspection sees sign-outs", async () => {
  const server = await startServer({ BATON_INTROSPECTION_TOKEN: SECRET });
  try {
    const base = server.url;
    const email = uniqueEmail("verify");
    assert.equal((await post(`${base}/auth/register`, { email, password: "correct horse battery" })).status, 201);
    const login = await (await post(`${base}/auth/login`, { email, password: "correct horse battery" })).json();
    const token = login.access_token;

    // Node: jose with the JWKS named by the discovery document.
    const doc = await (await fetch(`${base}/.well-known/openid-configuration`)).json();
    assert.equal(doc.issuer, base);
    const jwks = createRemoteJWKSet(new URL(doc.jwks_uri));
    const options = { issuer: doc.issuer, audience: "baton", algorithms: ["EdDSA"], typ: "at+jwt" };
    const { payload } = await jwtVerify(token, jwks, options);
    assert.equal(payload.sub, login.user.id);
    assert.equal(payload.sid, login.session_id);
    await assert.rejects(jwtVerify(token, jwks, { ...options, audience: "another-api" }), /aud/);
    const tampered = token.slice(0, -4) + (token.endsWith("AAAA") ? "BBBB" : "AAAA");
    await assert.rejects(jwtVerify(tampered, jwks, options), /signature/);

    // Python: PyJWT with cryptography.
    const py = python(base, token);
    assert.ok(py.ok, py.err);
    assert.equal(py.claims.sub, login.user.id);
    assert.equal(py.claims.iss, base);
    assert.ok(!python(base, token, "another-api").ok, "PyJWT accepted the wrong audience");
    assert.ok(!python(base, tampered).ok, "PyJWT accepted a tampered token");

    // A signature stays valid until `exp`: only introspection tells a signed-out session.
    assert.equal((await introspect(base, token)).active, true);
    const out = await post(`${base}/auth/logout`, {}, { authorization: `Bearer ${token}` });
    assert.equal(out.status, 204);
    assert.deepEqual(await introspect(base, token), { active: false });
    assert.equal((await jwtVerify(token, jwks, options)).payload.sub, login.user.id);
  } finally {
    await server.stop();
  }
});
