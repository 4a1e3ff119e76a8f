// Sign-in by email in the demo page, with mail delivered by a real SMTP server (aiosmtpd,
// tests/smtp/sink.py): the code typed in, and the link of the mail opening the page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, uniqueEmail, screenshot, smtpSink, freePort } from "./harness.mjs";

test("21. sign-in by email: the mailed code, then the mailed link, in the demo page", async () => {
  const smtp = await smtpSink();
  const port = await freePort();
  const page_url = `http://127.0.0.1:${port}`;
  const server = await startServer({
    BATON_BIND: `127.0.0.1:${port}`,
    BATON_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    BATON_MAIL_FROM: "Baton demo <no-reply@baton.test>",
    BATON_MAGIC_LINK_URL: `${page_url}/`,
  });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    // A new address: the account comes with the first sign-in.
    const email = uniqueEmail("mail");
    await page.fill("#email", email);
    await page.click("#btn-code");
    await page.waitForSelector("#code-step:not([hidden])");
    // The code field is styled like the others, with its button on the same row.
    const look = await page.evaluate(() => {
      const field = document.querySelector("#code").getBoundingClientRect();
      const button = document.querySelector("#btn-verify-code").getBoundingClientRect();
      return { sameRow: Math.abs(field.top - button.top) < 2 && Math.abs(field.bottom - button.bottom) < 2, background: getComputedStyle(document.querySelector("#code")).backgroundColor };
    });
    assert.ok(look.sameRow, "the code's button wrapped onto its own row");
    assert.notEqual(look.background, "rgb(255, 255, 255)", "the code field is an unstyled white box");
    await screenshot(page, "demo-code-sent");
    const first = await smtp.mail(1);
    assert.ok(first.includes(`X-Envelope-To: ${email}`));
    const code = /code: (\d{6})/.exec(first)[1];
    await page.fill("#code", code);
    await page.click("#btn-verify-code");
    await page.waitForFunction(() => document.body.dataset.state === "signed-in");
    assert.equal(await page.evaluate(() => window.__demo.baton.session.email), email);
    // Bound to the browser's key like any other sign-in.
    const token = await page.evaluate(() => window.__demo.baton.getAccessToken());
    assert.ok(JSON.parse(Buffer.from(token.split(".")[1], "base64url")).cnf);
    await screenshot(page, "demo-signed-in-by-code");

    // Signed out, the form starts afresh: no note of a code on its way, no code field.
    await page.click("#btn-logout");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    assert.deepEqual(
      await page.evaluate(() => ({ step: document.querySelector("#code-step").hidden, code: document.querySelector("#code").value })),
      { step: true, code: "" },
    );
    // The link of the next mail signs in again, and leaves the address bar clean.
    await page.fill("#email", email);
    await page.click("#btn-code");
    const second = await smtp.mail(2);
    const link = new RegExp(`(${page_url}/\\?token=[A-Za-z0-9_-]+)`).exec(second)[1];
    await page.goto(link);
    await page.waitForFunction(() => document.body.dataset.state === "signed-in");
    assert.equal(new URL(page.url()).search, "");
    // Used once: the same link again is refused, with a message.
    await page.click("#btn-logout");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    await page.goto(link);
    await page.waitForFunction(() => /invalid_code/.test(document.querySelector("#auth-error").textContent));
    assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-out");
  } finally {
    await browser.close();
    await server.stop();
    smtp.stop();
  }
});

test("22. without mail set up, the demo says what to configure", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    await page.fill("#email", uniqueEmail("nomail"));
    await page.click("#btn-code");
    await page.waitForFunction(() => /BATON_SMTP_URL/.test(document.querySelector("#auth-error").textContent));
  } finally {
    await browser.close();
    await server.stop();
  }
});
