// The demo with its own backend: the orders service (verify/examples/demo-api.rs, built on
// baton-verify) accepts the page's tokens, and refuses them as soon as the session is signed
// out from another device, before the access token expires.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, signIn, uniqueEmail, screenshot, startOrdersService } from "./harness.mjs";

const SECRET = "demo-backend-test-introspection-secret";


test("15. the orders service accepts the page's tokens and refuses a session ended elsewhere", async () => {
  // Long-lived access tokens: the refusal must come from introspection, not from expiry.
  const server = await startServer({ BATON_INTROSPECTION_TOKEN: SECRET, BATON_ACCESS_TTL: "15m" });
  const orders = await startOrdersService(server.url, SECRET);
  const browser = await launchBrowser();
  try {
    const email = uniqueEmail("orders");
    const laptop = await (await browser.newContext()).newPage();
    await laptop.goto(`${server.url}/?api=${encodeURIComponent(orders.url)}`);
    await signIn(laptop, email);
    await laptop.click("#btn-ping");
    await laptop.waitForFunction(() => /^orders service: 200/.test(document.querySelector("#api-result").textContent));
    assert.match(await laptop.textContent("#api-result"), /A-1001/);
    await screenshot(laptop, "demo-orders-service");

    // Another device signs out everywhere.
    const phone = await (await browser.newContext()).newPage();
    await phone.goto(server.url);
    await signIn(phone, email, { register: false });
    await phone.click("#btn-logout-all");
    await phone.waitForFunction(() => document.body.dataset.state === "signed-out");

    // The laptop's token has not expired, but the orders service refuses it at once, and the
    // page says why.
    await laptop.click("#btn-ping");
    await laptop.waitForFunction(() => document.body.dataset.state === "signed-out", null, { timeout: 5000 });
    assert.match(await laptop.textContent("#auth-error"), /ended from another device/);
    const names = await laptop.evaluate(() => window.__demo.events.map((e) => e.name));
    assert.ok(names.includes("sessionExpired"), names.join());
    await screenshot(laptop, "demo-signed-out-elsewhere");
  } finally {
    await browser.close();
    orders.stop();
    await server.stop();
  }
});
