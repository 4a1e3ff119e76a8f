// Exactly one refresh per token across tabs: five tabs of one browser forcing refreshes at the
// same moment, cycle after cycle, against a server whose reuse grace is 1 ms, so any refresh of
// an already-spent token is treated as theft and would sign every tab out.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launchBrowser, signIn, uniqueEmail } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser.close();
});

const CYCLES = Number(process.env.BATON_E2E_CROSSTAB_CYCLES || 500);

test(`9. five tabs sharing one DPoP key, 1 ms reuse grace, ${CYCLES} cycles of simultaneous refreshes: no token refreshed twice`, async () => {
  const server = await startServer({ BATON_REUSE_GRACE: "1ms", BATON_RATE_LIMITS: "off" });
  try {
    const context = await browser.newContext();
    const first = await context.newPage();
    await first.goto(server.url);
    await signIn(first, uniqueEmail("fivetabs"));
    const tabs = [first];
    for (let i = 1; i < 5; i++) {
      const page = await context.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => document.body.dataset.state === "signed-in");
      tabs.push(page);
    }
    // Every refresh token presented to the server, as the browser sent it.
    const presented = [];
    // The DPoP key of each refresh's proof: one key, shared by every tab through IndexedDB.
    const keys = new Set();
    context.on("request", (req) => {
      if (new URL(req.url()).pathname === "/auth/refresh" && req.method() === "POST") {
        presented.push(JSON.parse(req.postData() || "{}").refresh_token);
        const proof = req.headers()["dpop"];
        keys.add(proof ? JSON.parse(Buffer.from(proof.split(".")[0], "base64url")).jwk.x : "none");
      }
    });
    const failures = [];
    for (let c = 0; c < CYCLES; c++) {
      const results = await Promise.all(
        tabs.map((p) =>
          p.evaluate(() => window.__demo.baton.refresh().then(() => "ok", (e) => e.code)),
        ),
      );
      const bad = results.filter((r) => r !== "ok");
      if (bad.length) {
        failures.push({ cycle: c, bad });
        break;
      }
    }
    const duplicates = presented.length - new Set(presented).size;
    assert.deepEqual(failures, [], "a tab's refresh failed");
    assert.equal(duplicates, 0, `${duplicates} of ${presented.length} refreshes presented a spent token`);
    assert.equal(keys.size, 1, `refresh proofs by ${keys.size} keys: ${[...keys]}`);
    assert.ok(!keys.has("none"), "a refresh without a DPoP proof");
    assert.ok(presented.length >= CYCLES, `${presented.length} refreshes for ${CYCLES} cycles`);
    for (const p of tabs) {
      assert.equal(await p.evaluate(() => document.body.dataset.state), "signed-in");
      const ends = await p.evaluate(
        () => window.__demo.events.filter((e) => e.name === "signedOut" || e.name === "sessionExpired").length,
      );
      assert.equal(ends, 0);
    }
    console.log(`  ${CYCLES} cycles, ${presented.length} refreshes, 0 duplicates`);
    await context.close();
  } finally {
    await server.stop();
  }
});
