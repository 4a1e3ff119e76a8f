// The demo page as a newcomer meets it: a landing that says what Baton does and links the docs;
// on a 390 px phone nothing scrolls sideways; a new account's first device is no warning;
// sessions have readable names; signing out clears the previous session's results; the theft
// button shows a copied refresh token refused (DPoP) or ending the session (Bearer).
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
    // Every tab shares the session: it is this browser's, not this tab's.
    assert.equal(await page.textContent("#sessions-list .tag.current"), "this browser");
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

test("27. the landing says what Baton does, links the docs, and previews what signing in shows", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    for (const [name, viewport] of [
      ["desktop", { width: 1280, height: 800 }],
      ["phone", { width: 390, height: 844 }],
    ]) {
      const context = await browser.newContext({ viewport, isMobile: name === "phone", hasTouch: name === "phone" });
      const page = await context.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => document.body.dataset.state === "signed-out");
      const landing = await page.evaluate(() => ({
        pitch: [...document.querySelectorAll(".top .tagline")].map((p) => p.textContent.replace(/\s+/g, " ").trim()),
        docs: [...document.querySelectorAll(".top a")].find((a) => a.textContent === "Docs")?.href,
        preview: [...document.querySelectorAll(".preview li strong")].map((s) => s.textContent),
        visible: !document.querySelector("#landing").hidden && !document.querySelector(".preview").hidden,
        sideways: document.documentElement.scrollWidth - window.innerWidth,
      }));
      assert.equal(landing.pitch.length, 2);
      assert.match(landing.pitch[0], /signed in/);
      assert.match(landing.pitch[1], /interceptor/);
      assert.equal(landing.docs, "https://github.com/baton-auth/baton/tree/main/docs");
      assert.deepEqual(landing.preview, [
        "A countdown to the next refresh.",
        "One refresh for many calls.",
        "A stolen token refused.",
      ]);
      assert.ok(landing.visible);
      assert.equal(landing.sideways, 0, `the landing scrolls sideways on the ${name}`);
      await screenshot(page, `demo-landing-${name}`);
      await signIn(page, uniqueEmail(name));
      await page.waitForFunction(() => document.querySelectorAll("#sessions-list li").length > 0);
      assert.equal(await page.evaluate(() => document.querySelector("#landing").hidden), true);
      await screenshot(page, `demo-signed-in-${name}`);
      await context.close();
    }
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("28. the theft button: a copied refresh token is refused without the key, and ends a Bearer session", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    // The default: bound to this browser's key. The copy is refused, the owner stays.
    const page = await browser.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("thief"));
    await page.click("#btn-steal");
    await page.waitForFunction(() => /replayed: 401 dpop_proof_invalid/.test(document.querySelector("#api-result").textContent));
    await page.waitForFunction(() => [...document.querySelectorAll("#audit-list li")].some((li) => /dpop_proof_refused/.test(li.textContent)));
    assert.equal(await page.evaluate(() => document.body.dataset.state), "signed-in");
    await page.click("#btn-ping");
    await page.waitForFunction(() => document.querySelector("#calls-ok").textContent === "1");
    await page.close();

    // Bearer (?dpop=off): the copy works once, and the owner's next refresh ends the session.
    const bearer = await browser.newPage();
    await bearer.goto(`${server.url}/?dpop=off`);
    await signIn(bearer, uniqueEmail("bearer"));
    await bearer.click("#btn-steal");
    await bearer.waitForFunction(() => document.body.dataset.state === "signed-out");
    assert.match(await bearer.textContent("#auth-error"), /used twice/);
    const ended = await bearer.evaluate(() => window.__demo.events.filter((e) => e.name === "sessionExpired").map((e) => e.detail.code));
    assert.deepEqual(ended, ["refresh_token_reused"]);
    // The whole session ended: the thief's newest token with it.
    await bearer.waitForFunction(() => /newest token now: 401 /.test(document.querySelector("#api-result").textContent));
    // Cookie transport: nothing for a script to copy.
    await signIn(bearer, uniqueEmail("cookie"), { transport: "cookie" });
    await bearer.click("#btn-steal");
    await bearer.waitForFunction(() => /HttpOnly cookie/.test(document.querySelector("#api-result").textContent));
    assert.equal(await bearer.evaluate(() => document.body.dataset.state), "signed-in");
  } finally {
    await browser.close();
    await server.stop();
  }
});
