// baton.session and baton.status() as snapshots: the same object until something changes (what
// React's useSyncExternalStore needs), and a `change` event when it does.
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

test("11. session and status are stable snapshots; `change` tells when they change", async () => {
  const server = await startServer();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("snap"));
    const r = await page.evaluate(async () => {
      const { Baton } = await import("baton-auth");
      const b = await Baton.create({ baseUrl: location.origin, storageKey: "baton-demo:body" });
      const changes = [];
      b.on("change", (d) => changes.push(d.session));
      await new Promise((ok) => setTimeout(ok, 50));
      const initial = changes.length;
      const first = b.session;
      const same = first === b.session && b.status() === b.status();
      await b.refresh();
      const after = b.session;
      const result = {
        same,
        initial,
        changedOnRefresh: changes.length > initial,
        newObject: after !== first,
        stableAgain: after === b.session,
        eventCarriesIt: changes[changes.length - 1] === after,
        frozen: Object.isFrozen(after),
      };
      b.dispose();
      return result;
    });
    assert.deepEqual(r, {
      same: true,
      initial: 1,
      changedOnRefresh: true,
      newObject: true,
      stableAgain: true,
      eventCarriesIt: true,
      frozen: true,
    });
    await context.close();
  } finally {
    await server.stop();
  }
});
