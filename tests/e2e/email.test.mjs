// Sign-in by email in the demo page, with mail delivered by a real SMTP server (aiosmtpd,
// tests/smtp/sink.py): the code typed in, and the link of the mail opening the page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, startServer, launchBrowser, uniqueEmail, screenshot } from "./harness.mjs";

async function smtpSink() {
  const dir = mkdtempSync(join(tmpdir(), "baton-mail-"));
  const child = spawn("/usr/bin/python3", [join(ROOT, "tests/smtp/sink.py"), dir], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", (l) => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(l);
      m ? ok(Number(m[1])) : fail(new Error(`unexpected first line: ${l}`));
    });
    child.once("exit", (code) => fail(new Error(`the SMTP server exited with ${code}`)));
  });
  // The n-th mail, once it arrived, with quoted-printable undone.
  const mail = async (n) => {
    const file = join(dir, `${String(n).padStart(4, "0")}.eml`);
    for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
    const raw = readFileSync(file, "utf8");
    return raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  };
  return { port, mail, stop: () => child.kill() };
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

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
    await page.waitForSelector("#code:not([hidden])");
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

    // Signed out, the link of the next mail signs in again, and leaves the address bar clean.
    await page.click("#btn-logout");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
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
