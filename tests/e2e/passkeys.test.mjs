// Passkeys in Chromium with its virtual authenticator (DevTools Protocol WebAuthn domain: ctap2,
// internal, resident keys, user verification): sign up by an emailed code, add a passkey, sign
// out, sign in with it (usernameless, then through autofill), DPoP-bound; remove it and see
// sign-in refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, uniqueEmail, screenshot, smtpSink, freePort, signIn, totp } from "./harness.mjs";

let browser;
let server;
let smtp;
let origin;
before(async () => {
  browser = await launchBrowser();
  smtp = await smtpSink();
  const port = await freePort();
  // Passkeys belong to a host name: the page is opened at localhost, the relying party's id.
  origin = `http://localhost:${port}`;
  server = await startServer({
    BATON_BIND: `127.0.0.1:${port}`,
    BATON_RATE_LIMITS: "relaxed",
    BATON_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    BATON_MAIL_FROM: "Baton demo <no-reply@baton.test>",
    BATON_MAGIC_LINK_URL: `${origin}/`,
    BATON_WEBAUTHN_RP_ID: "localhost",
    BATON_WEBAUTHN_ORIGINS: origin,
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  smtp?.stop();
});

const claimsOf = (page) =>
  page.evaluate(async () => {
    const token = await window.__demo.baton.getAccessToken();
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  });

test("32. passkeys in Chromium: sign up by code, add a passkey, sign in with it without an email and through autofill, remove it", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  const email = uniqueEmail("passkey");
  await page.fill("#email", email);
  await page.click("#btn-code");
  const code = /code: (\d{6})/.exec(await smtp.mail(1))[1];
  await page.fill("#code", code);
  await page.click("#btn-verify-code");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in");

  // Add a passkey from the demo's card.
  await page.waitForFunction(() => document.getElementById("passkey-status").textContent.startsWith("None yet"));
  await page.click("#btn-passkey-add");
  await page.waitForFunction(() => document.querySelectorAll("#passkey-list li").length === 1);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true);
  assert.equal(credentials[0].rpId, "localhost");
  await screenshot(page, "demo-passkey-added");

  // Signed out, the page asks for a passkey in the email field (conditional mediation, from the
  // moment the form shows); the authenticator answers at once and the page is signed in,
  // without an email: level 2, bound to this browser's key.
  const before = await page.evaluate(() => window.__demo.baton.session.sessionId);
  await page.click("#btn-logout");
  await page.waitForFunction((before) => { const s = window.__demo.baton.session; return s && s.sessionId !== before; }, before, { timeout: 15000 });
  let claims = await claimsOf(page);
  assert.deepEqual(claims.amr, ["webauthn"]);
  assert.equal(claims.aal, 2);
  assert.ok(claims.cnf && claims.cnf.jkt, "the session is DPoP-bound");
  assert.equal(await page.evaluate(() => window.__demo.baton.session.email), email);
  const used = await page.evaluate(() => window.__demo.baton.listPasskeys());
  assert.equal(used.length, 1);
  assert.equal(typeof used[0].last_used_at, "number");

  // The button: with the user not answering, the autofill request waits; "Sign in with a
  // passkey" ends it and asks with a dialog, which the user answers.
  await cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId, enabled: false });
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-out");
  await cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId, enabled: true });
  await page.click("#btn-passkey");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in", null, { timeout: 15000 });
  claims = await claimsOf(page);
  assert.deepEqual(claims.amr, ["webauthn"]);
  assert.equal(await page.evaluate(() => window.__demo.baton.session.email), email);

  // Removed, the passkey no longer signs in (the authenticator still has it).
  await page.click("#passkey-list button[data-passkey]");
  await page.waitForFunction(() => document.querySelectorAll("#passkey-list li").length === 0);
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.click("#btn-passkey");
  await page.waitForFunction(() => document.getElementById("auth-error").textContent.startsWith("passkey_invalid"));
  assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-out");
  await screenshot(page, "demo-passkey-removed-refused");
  await context.close();
});

test("32. a passkey as the second step of a password sign-in, in the demo page", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`${origin}/`);
  const email = uniqueEmail("passkey-mfa");
  await signIn(page, email);
  const enrolled = await page.evaluate(() => window.__demo.baton.enrollTotp());
  await page.evaluate((code) => window.__demo.baton.confirmTotp(code), totp(enrolled.secret, 0));
  await page.click("#btn-passkey-add");
  await page.waitForFunction(() => document.querySelectorAll("#passkey-list li").length === 1);

  // The user does not pick the passkey offered in the email field; they type the password.
  await cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId, enabled: false });
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.fill("#email", email);
  await page.fill("#password", "correct horse battery");
  await page.click("#btn-login");
  await page.waitForSelector("#btn-mfa-passkey:not([hidden])");
  await cdp.send("WebAuthn.setAutomaticPresenceSimulation", { authenticatorId, enabled: true });
  await page.click("#btn-mfa-passkey");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in", null, { timeout: 15000 });
  const claims = await claimsOf(page);
  assert.deepEqual(claims.amr, ["pwd", "webauthn"]);
  assert.equal(claims.aal, 2);
  await context.close();
});
