// baton-auth/server's createBatonServer against a real baton-server, in Node, as a
// server-rendered app uses it: sign-in through `auth.proxy` (cookies made the app's), `auth.session`
// before and after the access token expires, twenty renders at once and two server processes
// after expiry (one rotation, everyone signed in), logout through the proxy, a session revoked
// elsewhere null within about a second.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startServer, uniqueEmail, unpackedPackage } from "./harness.mjs";
import { startSsrExpress } from "../verify/ssr-express.mjs";
import { app as fetchApp } from "../verify/ssr-fetch.mjs";

const APP = "http://localhost:3999"; // the app's origin (never listened on: Requests are built here)
const DEVICE = "ssr-test-device-0123456789";
const SECRET = "ssr-introspection-secret-of-32-bytes!";
let server;
let createBatonServer;
before(async () => {
  server = await startServer({ BATON_ACCESS_TTL: "4s", BATON_CORS_ORIGINS: APP, BATON_INTROSPECTION_TOKEN: SECRET, BATON_RATE_LIMITS: "relaxed" });
  ({ createBatonServer } = await import(join(unpackedPackage(), "server.js")));
});
after(() => server?.stop());

// A browser's cookie jar for the app's origin, fed by Set-Cookie lines.
function jar() {
  const cookies = new Map();
  return {
    take(headers) {
      for (const line of headers.getSetCookie()) {
        const [pair, ...attrs] = line.split(";").map((s) => s.trim());
        const [name, value] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
        if (attrs.some((a) => /^max-age=0$/i.test(a))) cookies.delete(name);
        else cookies.set(name, { value, attrs });
      }
    },
    header: () => [...cookies].map(([n, c]) => `${n}=${c.value}`).join("; "),
    get: (name) => cookies.get(name),
  };
}

const page = (cookies, path = "/dashboard") => new Request(APP + path, { headers: { cookie: cookies.header() } });

async function metric(series) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(series));
  return line ? Number(line.split(" ").pop()) : 0;
}
const rotations = () => metric('auth_token_refresh_total{status="success"}');

async function signedIn(auth) {
  const email = uniqueEmail("ssr");
  const cookies = jar();
  const post = (path, body) =>
    auth.proxy(new Request(APP + path, { method: "POST", headers: { "content-type": "application/json", origin: APP, "x-device-id": DEVICE, dpop: "not-passed-on" }, body: JSON.stringify(body) }));
  assert.equal((await post("/auth/register", { email, password: "correct horse battery" })).status, 201);
  const res = await post("/auth/login", { email, password: "correct horse battery", refresh_transport: "cookie" });
  assert.equal(res.status, 200);
  const body = await res.json();
  // The proxy passes no DPoP proof on: the session is a Bearer one, usable by the app's server.
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.refresh_token, undefined);
  cookies.take(res.headers);
  return { email, cookies, body };
}

test("33. SSR: sign-in through the proxy sets HttpOnly first-party cookies; the session is read, then refreshed after expiry", async () => {
  const auth = createBatonServer({ baseUrl: server.url, introspectionSecret: SECRET, refreshMargin: 1 });
  try {
    // Other paths are not Baton's.
    assert.equal(await auth.proxy(new Request(`${APP}/dashboard`)), null);
    const { email, cookies, body } = await signedIn(auth);
    for (const name of ["baton_refresh", "baton_access", "baton_device"]) {
      const c = cookies.get(name);
      assert.ok(c, `${name} is set`);
      assert.ok(c.attrs.includes("HttpOnly") && c.attrs.includes("Path=/") && c.attrs.includes("SameSite=Lax"), `${name}: ${c.attrs}`);
      // Plain-HTTP localhost: not Secure (browsers would drop it); anywhere else Secure.
      assert.ok(!c.attrs.includes("Secure"), name);
    }
    const { session, headers } = await auth.session(page(cookies));
    assert.equal(session.user.id, body.user.id);
    // The same, as a Request-to-Response app (docs/ssr.md).
    const handle = fetchApp(auth);
    assert.equal(await (await handle(page(cookies))).text(), `<p>Signed in as ${body.user.id}</p>`);
    assert.equal(await (await handle(new Request(`${APP}/`))).text(), "<p>Signed out</p>");
    assert.equal((await handle(new Request(`${APP}/auth/me`))).status, 401);
    assert.equal(session.accessToken, body.access_token);
    assert.equal([...headers].length, 0, "no refresh, no cookies");
    // Through the proxy, the access token reaches Baton's other endpoints too.
    const me = await auth.proxy(new Request(`${APP}/auth/me`, { headers: { authorization: `Bearer ${session.accessToken}` } }));
    assert.equal((await me.json()).user.email, email);

    // After expiry, the next render refreshes: new cookies for the app's response.
    await new Promise((r) => setTimeout(r, 3500));
    const before = await rotations();
    const later = await auth.session(page(cookies));
    assert.ok(later.session, "still signed in");
    assert.notEqual(later.session.accessToken, body.access_token);
    const set = later.headers.getSetCookie();
    assert.ok(set.some((c) => c.startsWith("baton_refresh=")) && set.some((c) => c.startsWith("baton_access=")), set.join("\n"));
    assert.equal((await rotations()) - before, 1);
    const secure = createBatonServer({ baseUrl: server.url });
    assert.ok(secure.cookie(new Request("https://app.example.com/"), "baton_access", "x").includes("Secure"));
  } finally {
    auth.close();
  }
});

test("33. SSR: twenty renders at once after expiry, two server processes, a render beside the browser's own refresh: one rotation each time, no theft", async () => {
  const auth = createBatonServer({ baseUrl: server.url, introspectionSecret: SECRET, refreshMargin: 1 });
  try {
    const { cookies } = await signedIn(auth);
    await new Promise((r) => setTimeout(r, 3500));
    let before = await rotations();
    const renders = await Promise.all(Array.from({ length: 20 }, () => auth.session(page(cookies))));
    assert.equal(renders.filter((r) => r.session).length, 20);
    assert.equal(new Set(renders.map((r) => r.session.accessToken)).size, 1);
    assert.equal((await rotations()) - before, 1);
    // The browser's jar takes the new cookies (from one of the responses).
    cookies.take(renders[0].headers);

    // Two server processes, ten renders each, with the same expired cookies: Baton's own rules
    // (the reuse grace, the device id, the shared Idempotency-Key) give them one successor.
    await new Promise((r) => setTimeout(r, 3500));
    before = await rotations();
    const script = `
      const { createBatonServer } = await import(${JSON.stringify(join(unpackedPackage(), "server.js"))});
      const auth = createBatonServer({ baseUrl: ${JSON.stringify(server.url)}, refreshMargin: 1 });
      const req = new Request("${APP}/", { headers: { cookie: ${JSON.stringify(cookies.header())} } });
      const all = await Promise.all(Array.from({ length: 10 }, () => auth.session(req)));
      const refresh = all[0].headers.getSetCookie().find((c) => c.startsWith("baton_refresh="));
      console.log(JSON.stringify({ signedIn: all.filter((r) => r.session).length, refresh }));
    `;
    const run = () =>
      new Promise((ok, fail) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.on("exit", (code) => (code === 0 ? ok(JSON.parse(out)) : fail(new Error(`exit ${code}`))));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.equal(a.signedIn + b.signedIn, 20);
    assert.equal(a.refresh.split(";")[0], b.refresh.split(";")[0], "the same successor");
    assert.equal((await rotations()) - before, 1);

    // The browser's own refresh through the proxy (baton-auth with the cookie transport) at the
    // same moment as a server render's: one rotation, both answered, no theft.
    cookies.take(new Headers([["set-cookie", a.refresh]]));
    await new Promise((r) => setTimeout(r, 3500));
    before = await rotations();
    const browserRefresh = auth.proxy(
      new Request(`${APP}/auth/refresh`, { method: "POST", headers: { origin: APP, "x-device-id": DEVICE, cookie: cookies.header() } }),
    );
    const [fromBrowser, render] = await Promise.all([browserRefresh, auth.session(page(cookies))]);
    assert.equal(fromBrowser.status, 200);
    assert.ok(render.session, "the render is signed in");
    assert.equal((await rotations()) - before, 1);
    assert.equal(await metric("auth_refresh_reuse_detected_total"), 0);
  } finally {
    auth.close();
  }
});

test("33. SSR: logout through the proxy ends the server's session; a session revoked elsewhere is null within about a second", async () => {
  const auth = createBatonServer({ baseUrl: server.url, introspectionSecret: SECRET });
  try {
    const { cookies } = await signedIn(auth);
    assert.ok((await auth.session(page(cookies))).session);
    const out = await auth.proxy(new Request(`${APP}/auth/logout`, { method: "POST", headers: { origin: APP, "x-device-id": DEVICE, cookie: cookies.header() } }));
    assert.equal(out.status, 204);
    const stale = cookies.header();
    cookies.take(out.headers);
    assert.equal(cookies.get("baton_refresh"), undefined);
    assert.equal(cookies.get("baton_access"), undefined);
    assert.equal((await auth.session(page(cookies))).session, null);
    // A copy of the old cookies (a request already on its way) is signed out too, once the
    // revocation reaches this process (Baton's revocation feed, polled every second).
    await nullWithin(auth, { header: () => stale });

    // Signed out elsewhere (every session of the user, from another device): the access
    // cookie is still unexpired, yet the next render within about a second has no session.
    const second = await signedIn(auth);
    const { session } = await auth.session(page(second.cookies));
    const all = await fetch(`${server.url}/auth/logout-all`, { method: "POST", headers: { authorization: `Bearer ${session.accessToken}` } });
    assert.equal(all.status, 204);
    await nullWithin(auth, second.cookies);
  } finally {
    auth.close();
  }
});

// The session of `cookies` turns null within about a second (two, on a busy machine).
async function nullWithin(auth, cookies) {
  const started = Date.now();
  let s = true;
  while (s && Date.now() - started < 3000) {
    s = (await auth.session(page(cookies))).session;
    if (s) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(s, null);
  assert.ok(Date.now() - started < 2000, `null after ${Date.now() - started} ms`);
}

test("33. SSR in Express (docs/ssr.md): sign-in through the app's /auth, a page rendered with the session", async () => {
  const server2 = await import(join(unpackedPackage(), "server.js"));
  const app = await startSsrExpress({ baton: server.url, secret: SECRET, server: server2 });
  try {
    const email = uniqueEmail("ssr-express");
    const cookies = jar();
    const post = (path, body) =>
      fetch(app.url + path, { method: "POST", headers: { "content-type": "application/json", origin: APP, "x-device-id": DEVICE }, body: JSON.stringify(body) });
    assert.equal((await post("/auth/register", { email, password: "correct horse battery" })).status, 201);
    const login = await post("/auth/login", { email, password: "correct horse battery", refresh_transport: "cookie" });
    assert.equal(login.status, 200);
    const user = (await login.json()).user;
    cookies.take(login.headers);
    assert.ok(cookies.get("baton_refresh") && cookies.get("baton_access"));
    const page = await fetch(`${app.url}/account`, { headers: { cookie: cookies.header() } });
    assert.equal(await page.text(), `<p>Signed in as ${user.id}</p>`);
    const nobody = await fetch(`${app.url}/account`);
    assert.match(await nobody.text(), /Sign in/);
  } finally {
    app.close();
  }
});
