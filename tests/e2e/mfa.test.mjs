// Two-factor sign-in in Chromium with baton-auth/mfa: enrol TOTP, sign out, sign in with the
// password and a code, then with a recovery code, which then no longer works; a step-up.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, launchBrowser, signIn, uniqueEmail, screenshot, totp } from "./harness.mjs";

let browser;
let server;
before(async () => {
  browser = await launchBrowser();
  server = await startServer({ BATON_RATE_LIMITS: "relaxed" });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});


const PASSWORD = "correct horse battery";

test("31. TOTP in Chromium: enrol, sign in with password and code, then with a recovery code that works once; step-up", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  const email = uniqueEmail("mfa");
  await signIn(page, email);
  await page.evaluate(() => import("/pkg/dist/mfa.js"));
  const enrolled = await page.evaluate(() => window.__demo.baton.enrollTotp());
  assert.match(enrolled.otpauthUrl, /^otpauth:\/\/totp\/Baton:/);
  const codes = await page.evaluate((code) => window.__demo.baton.confirmTotp(code), totp(enrolled.secret, 0));
  assert.equal(codes.length, 10);
  // This session signed in with the password alone: removing the factor needs a step-up.
  const up = await page.evaluate(async (code) => {
    const baton = window.__demo.baton;
    const aal = async () => JSON.parse(atob((await baton.getAccessToken()).split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).aal;
    const { factors } = await baton.mfaFactors();
    const refused = await baton.removeMfaFactor(factors[0].id).then(() => "removed", (e) => e.code);
    const before = await aal();
    await baton.stepUp({ recoveryCode: code });
    return { refused, before, after: await aal() };
  }, codes[9]);
  assert.deepEqual(up, { refused: "step_up_required", before: 1, after: 2 });

  const signInWith = (factor) =>
    page.evaluate(
      async ({ email, password, factor }) => {
        const baton = window.__demo.baton;
        await baton.logout();
        const first = await baton.login(email, password);
        try {
          const session = await baton.verifyMfa(factor);
          const token = await baton.getAccessToken();
          const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
          return { first, signedIn: session.userId === baton.session.userId, amr: claims.amr, aal: claims.aal };
        } catch (e) {
          return { first, error: e.code, session: baton.session };
        }
      },
      { email, password: PASSWORD, factor },
    );

  const withCode = await signInWith({ totp: totp(enrolled.secret, 1) });
  assert.deepEqual(withCode, { first: { mfaRequired: true, methods: ["totp", "recovery_code"] }, signedIn: true, amr: ["pwd", "otp"], aal: 2 });
  const withRecovery = await signInWith({ recoveryCode: codes[0] });
  assert.deepEqual(withRecovery.amr, ["pwd", "recovery"]);
  const again = await signInWith({ recoveryCode: codes[0] });
  assert.equal(again.error, "invalid_code");
  assert.equal(again.session, null);
  // The same sign-in goes on with a right factor.
  const finished = await page.evaluate((code) => window.__demo.baton.verifyMfa({ recoveryCode: code }).then((s) => s !== null), codes[1]);
  assert.equal(finished, true);

  const stepped = await page.evaluate(async () => {
    const baton = window.__demo.baton;
    const { factors } = await baton.mfaFactors();
    const before = await baton.removeMfaFactor(factors[0].id).then(() => "removed", (e) => e.code);
    return { before, left: (await baton.mfaFactors()).factors.length };
  });
  // Signed in with a recovery code: level 2, so the factor may go.
  assert.deepEqual(stepped, { before: "removed", left: 0 });
  await context.close();
});

test("31. the demo page: TOTP set up with a QR code a reader decodes, the recovery codes, and a sign-in with the second step", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  const email = uniqueEmail("demo-mfa");
  await signIn(page, email);
  await page.click("#btn-mfa-setup");
  await page.waitForSelector("#mfa-enroll:not([hidden])");
  const secret = (await page.textContent("#mfa-secret")).trim();
  // The QR code as a phone would read it.
  const png = join(mkdtempSync(join(tmpdir(), "baton-qr-")), "qr.png");
  await page.locator("#mfa-qr").screenshot({ path: png });
  const read = spawnSync("/usr/bin/zbarimg", ["-q", "--raw", png], { encoding: "utf8" });
  assert.equal(read.status, 0, read.stderr);
  assert.equal(read.stdout.trim(), `otpauth://totp/Baton:${encodeURIComponent(email)}?secret=${secret}&issuer=Baton&algorithm=SHA1&digits=6&period=30`);
  await page.fill("#mfa-confirm-code", totp(secret, 0));
  await page.click("#btn-mfa-confirm");
  await page.waitForSelector("#mfa-codes:not([hidden])");
  assert.equal(await page.locator("#mfa-recovery li").count(), 10);
  await page.waitForFunction(() => document.getElementById("mfa-status").textContent.startsWith("On"));
  await screenshot(page, "demo-mfa-recovery-codes");
  // Signed out, the password alone is not enough any more.
  await page.click("#btn-logout");
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.fill("#email", email);
  await page.fill("#password", PASSWORD);
  await page.click("#btn-login");
  await page.waitForSelector("#mfa-step:not([hidden])");
  assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-out");
  await page.fill("#mfa-code", totp(secret, 1));
  await page.click("#btn-verify-mfa");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in");
  assert.equal(await page.locator("#mfa-step").isHidden(), true);
  await context.close();
});
