// Sign-in through an identity provider in Chromium, against the certified npm `oidc-provider`
// on loopback (e2e/idp.mjs): the demo's button, the provider's sign-in and consent pages, back
// to the page, the one-time code traded, signed in and DPoP-bound; an account with a second
// factor stops at the second step. And the refusals: an ID token with the wrong nonce, issuer,
// audience or expiry (signed by the provider's own key), a stolen code injected into another
// browser's flow (PKCE), a replayed callback, a reused one-time code, redirect_to not allowed,
// an unverified provider address against an existing account.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, freePort, screenshot, totp } from "./harness.mjs";
import { startIdp, throughProvider } from "./idp.mjs";

let browser, server, idp, origin;
before(async () => {
  browser = await launchBrowser();
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  idp = await startIdp({ port: await freePort(), redirectUris: [`${origin}/auth/oauth/idp/callback`], accounts: { eve: { email: "eve@example.com", verified: false } } });
  const dir = mkdtempSync(join(tmpdir(), "baton-idp-"));
  const file = join(dir, "providers.toml");
  writeFileSync(file, `[providers.idp]
kind = "oidc"
issuer = "${idp.issuer}"
client_id = "${idp.clientId}"
client_secret = "${idp.clientSecret}"
scopes = ["openid", "email"]
display_name = "the demo provider"
`);
  server = await startServer({ BATON_BIND: `127.0.0.1:${port}`, BATON_PROVIDERS_FILE: file, BATON_REDIRECT_ALLOWLIST: `${origin}/`, BATON_RATE_LIMITS: "relaxed" });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await idp?.stop();
});

const claimsOf = (page) =>
  page.evaluate(async () => {
    const token = await window.__demo.baton.getAccessToken();
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  });

async function openDemo(context) {
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.waitForSelector("#btn-idp-idp");
  return page;
}

// A flow through the button that ends on the demo page; its error text, if any.
async function viaButton(page, login) {
  await page.click("#btn-idp-idp");
  await throughProvider(page, login);
  await page.waitForFunction(() => document.body.dataset.state === "signed-in" || document.getElementById("auth-error").textContent || !document.getElementById("mfa-step").hidden, null, { timeout: 15000 });
  return page.textContent("#auth-error");
}

test("35. sign in with an OpenID provider in Chromium: button, provider's pages, back, one-time code, DPoP-bound; a second factor is asked for", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  const seen = [];
  page.on("request", (r) => seen.push(r.url()));
  assert.equal(await page.textContent("#btn-idp-idp"), "Sign in with the demo provider");
  assert.equal(await viaButton(page, "ada"), "");
  const claims = await claimsOf(page);
  assert.deepEqual(claims.amr, ["fed"]);
  assert.ok(claims.cnf && claims.cnf.jkt, "the session is DPoP-bound");
  assert.equal(await page.evaluate(() => window.__demo.baton.session.email), "ada@idp.test");
  // The code is out of the address bar, and no token was ever in a URL.
  assert.equal(new URL(page.url()).search, "");
  const returned = seen.find((u) => u.includes("baton_code="));
  assert.ok(returned, "the page was opened with a one-time code");
  assert.ok(!seen.some((u) => /access_token|refresh_token|id_token=/.test(u)), "no token in a URL");
  await screenshot(page, "demo-provider-signed-in");
  const ids = await page.evaluate(() => window.__demo.baton.listIdentities());
  assert.equal(ids.length, 1);
  assert.equal(ids[0].provider, "idp");
  assert.equal(ids[0].subject, "ada");

  // The one-time code again (from this browser, with its cookie): refused.
  const code = new URL(returned).searchParams.get("baton_code");
  const again = await page.evaluate(async ({ origin, code }) => {
    const r = await fetch(`${origin}/auth/oauth/exchange`, { method: "POST", credentials: "include", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }) });
    return [r.status, (await r.json()).error.code];
  }, { origin, code });
  assert.deepEqual(again, [401, "invalid_code"]);

  // A second factor: the next provider sign-in stops at the second step (handleRedirect
  // resolves to { mfaRequired }), and the code from the app finishes it.
  const secret = await page.evaluate(async () => {
    const b = window.__demo.baton;
    const { factor_id, secret } = await b.fetch("/auth/mfa/totp/enroll", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }).then((r) => r.json());
    window.__factor = factor_id;
    return secret;
  });
  const confirmed = await page.evaluate(async (code) => {
    const r = await window.__demo.baton.fetch("/auth/mfa/totp/confirm", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ factor_id: window.__factor, code }) });
    return r.status;
  }, totp(secret));
  assert.equal(confirmed, 200);
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.waitForSelector("#btn-idp-idp");
  await page.click("#btn-idp-idp");
  // The provider remembers the account (its own session): straight back.
  await page.waitForFunction(() => !document.getElementById("mfa-step").hidden, null, { timeout: 15000 });
  assert.equal(await page.evaluate(() => window.__demo.baton.session), null);
  await page.fill("#mfa-code", totp(secret, 1));
  await page.click("#btn-verify-mfa");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in");
  const stepped = await claimsOf(page);
  assert.deepEqual(stepped.amr, ["fed", "otp"]);
  assert.equal(stepped.aal, 2);
  await context.close();
});

test("36. provider sign-ins refused: ID token nonce, issuer, audience, expiry; stolen code (PKCE); replayed state; redirect_to; unverified address", async () => {
  // ID tokens signed by the provider's own key with one wrong claim each.
  const wrong = {
    nonce: (c) => ({ ...c, nonce: "another-flow" }),
    iss: (c) => ({ ...c, iss: "http://127.0.0.1:1" }),
    aud: (c) => ({ ...c, aud: "another-client" }),
    exp: (c) => ({ ...c, exp: Math.floor(Date.now() / 1000) - 600, iat: Math.floor(Date.now() / 1000) - 900 }),
  };
  for (const [claim, change] of Object.entries(wrong)) {
    const context = await browser.newContext();
    const page = await openDemo(context);
    idp.tamper(change);
    const error = await viaButton(page, `bob-${claim}`);
    assert.match(error, /^provider_error/, claim);
    assert.equal(await page.evaluate(() => window.__demo.baton.session), null, claim);
    await context.close();
  }

  // A code stolen on its way back (the victim's callback never ran) and answered to the
  // attacker's own flow: the provider refuses it, the verifier is not that flow's.
  const victim = await browser.newContext();
  const vpage = await openDemo(victim);
  // The DevTools Protocol's Fetch domain sees the provider's redirect to the callback (page
  // routes do not see redirects).
  const callbacks = async (page, onPaused) => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*/auth/oauth/idp/callback*" }] });
    cdp.on("Fetch.requestPaused", (e) => onPaused(cdp, e));
    return cdp;
  };
  let stolen;
  await callbacks(vpage, (cdp, e) => {
    stolen = new URL(e.request.url).searchParams.get("code");
    cdp.send("Fetch.failRequest", { requestId: e.requestId, errorReason: "Aborted" });
  });
  await vpage.click("#btn-idp-idp");
  await throughProvider(vpage, "carol");
  for (let i = 0; i < 200 && !stolen; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(stolen, "the victim's code was caught");
  const attacker = await browser.newContext();
  const apage = await openDemo(attacker);
  const acdp = await callbacks(apage, (cdp, e) => {
    const u = new URL(e.request.url);
    u.searchParams.set("code", stolen);
    cdp.send("Fetch.continueRequest", { requestId: e.requestId, url: u.toString() });
  });
  const injected = await viaButton(apage, "mallory");
  assert.match(injected, /^provider_error/);
  assert.equal(await apage.evaluate(() => window.__demo.baton.session), null);
  await victim.close();
  await acdp.send("Fetch.disable");

  // A callback replayed (the attacker's browser again, its flow spent): invalid_state.
  const seen = [];
  apage.on("request", (r) => seen.push(r.url()));
  await apage.reload();
  await apage.waitForSelector("#btn-idp-idp");
  // The provider remembers mallory (its own session): straight back, signed in.
  await apage.click("#btn-idp-idp");
  await apage.waitForFunction(() => document.body.dataset.state === "signed-in", null, { timeout: 15000 });
  const callback = seen.find((u) => u.includes("/auth/oauth/idp/callback"));
  await apage.goto(callback);
  await apage.waitForFunction(() => document.getElementById("auth-error").textContent);
  assert.match(await apage.textContent("#auth-error"), /^invalid_state/);
  await attacker.close();

  // redirect_to must be allow-listed.
  const r = await fetch(`${origin}/auth/oauth/idp/start?redirect_to=${encodeURIComponent("https://evil.example/")}`, { redirect: "manual" });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, "redirect_not_allowed");

  // An account has eve@example.com; the provider does not vouch for it: not linked.
  const reg = await fetch(`${origin}/auth/register`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email: "eve@example.com", password: "correct horse battery" }) });
  assert.equal(reg.status, 201);
  const context = await browser.newContext();
  const page = await openDemo(context);
  assert.match(await viaButton(page, "eve"), /^email_unverified/);
  await context.close();
});

test("37. a signed-in user links a provider from baton-auth/oauth, signs in with it, and unlinks it", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  const email = `linker-${Date.now()}@example.com`;
  await page.fill("#email", email);
  await page.fill("#password", "correct horse battery");
  await page.click("#btn-register");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in");
  const sub = (await claimsOf(page)).sub;
  // The provider's address need not be the account's: the user is signed in on both sides.
  await page.evaluate(() => window.__demo.baton.linkIdentity("idp", { redirectTo: `${location.origin}/` }));
  await throughProvider(page, "linker");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in" && location.search === "");
  const ids = await page.evaluate(() => window.__demo.baton.listIdentities());
  assert.deepEqual(ids.map((i) => [i.provider, i.subject, i.email]), [["idp", "linker", "linker@idp.test"]]);
  // Signed out, the provider signs in this same account.
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.waitForSelector("#btn-idp-idp");
  await page.click("#btn-idp-idp");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in", null, { timeout: 15000 });
  assert.equal((await claimsOf(page)).sub, sub);
  // The password remains, so the identity may go; then it no longer signs in here.
  await page.evaluate(() => window.__demo.baton.unlinkIdentity("idp"));
  assert.deepEqual(await page.evaluate(() => window.__demo.baton.listIdentities()), []);
  await context.close();
});
