// The demo page as a newcomer meets it: on a 390 px phone nothing scrolls sideways; a new
// account's first device is no warning; sessions have readable names; signing out clears the
// previous session's results.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, signIn, uniqueEmail, screenshot } from "./harness.mjs";

test("16. the demo page on a phone: no sideways scroll, readable sessions, a clean sign-out", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    const sideways = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.goto(server.url);
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    assert.equal(await sideways(), 0, "the sign-in form scrolls sideways");
    await signIn(page, uniqueEmail("phone"));
    await page.waitForFunction(() => document.querySelectorAll("#sessions-list li").length > 0 && document.querySelectorAll("#audit-list li").length > 0);
    assert.equal(await sideways(), 0, "the signed-in page scrolls sideways");
    await screenshot(page, "demo-phone");

    for (const id of ["#expires-in", "#next-refresh"]) {
      assert.doesNotMatch(await page.textContent(id), /\b60 s/, `${id} shows 60 seconds`);
    }
    const session = await page.textContent("#sessions-list li");
    assert.match(session, /^Chrome \d+ on Linux · /, session);
    // A brand-new account: its first device is recorded, but not as a warning.
    const tags = await page.$$eval("#audit-list .tag", (els) => els.map((e) => e.textContent));
    assert.ok(!tags.includes("warning"), tags.join());

    await page.click("#btn-ping");
    await page.waitForFunction(() => document.querySelector("#calls-ok").textContent === "1");
    await page.click("#btn-logout");
    await page.waitForFunction(() => document.body.dataset.state === "signed-out");
    const left = await page.evaluate(() => ({
      result: document.querySelector("#api-result").textContent,
      ok: document.querySelector("#calls-ok").textContent,
      sessions: document.querySelectorAll("#sessions-list li").length,
      audit: document.querySelectorAll("#audit-list li").length,
    }));
    assert.deepEqual(left, { result: "No calls yet.", ok: "0", sessions: 0, audit: 0 });
    await context.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});
