// Where the token goes: baton.fetch attaches the access token and X-Device-ID only to the
// page's origin, baseUrl's and allowedOrigins; a third-party URL gets neither. A listed API
// whose CORS answer refuses those headers fails with its own error code, not "network_error".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { startServer, launchBrowser, signIn, uniqueEmail } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser.close();
});

/** A third-party API on its own port that records the headers it receives. */
async function thirdParty(allowHeaders) {
  const seen = [];
  const server = createServer((req, res) => {
    res.setHeader("Access-Control-Allow-Origin", "*");
    if (req.method === "OPTIONS") {
      res.setHeader("Access-Control-Allow-Headers", allowHeaders);
      res.setHeader("Access-Control-Allow-Methods", "GET, POST");
      res.end();
      return;
    }
    seen.push({ authorization: req.headers.authorization, device: req.headers["x-device-id"], dpop: req.headers.dpop });
    res.setHeader("Content-Type", "application/json");
    res.end('{"ok":true}');
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

test("10. the token goes only to allowed origins; a CORS refusal has its own error code", async () => {
  const server = await startServer();
  // An API that takes DPoP-bound tokens allows the DPoP header too.
  const open = await thirdParty("Authorization, X-Device-ID, DPoP, Content-Type");
  const strict = await thirdParty("Content-Type");
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("dest"));

    // Default: a third-party URL is fetched without credentials.
    const status = await page.evaluate((u) => window.__demo.baton.fetch(`${u}/echo`).then((r) => r.status), open.url);
    assert.equal(status, 200);
    assert.deepEqual(open.seen, [{ authorization: undefined, device: undefined, dpop: undefined }]);
    // The server's own API still gets them.
    assert.equal(await page.evaluate(() => window.__demo.baton.fetch("/api/ping").then((r) => r.status)), 200);

    // Listed in allowedOrigins, it gets them.
    const result = await page.evaluate(
      async ([openUrl, strictUrl]) => {
        const { Baton } = await import("baton-auth");
        const b = await Baton.create({
          baseUrl: location.origin,
          storageKey: "baton-demo:body",
          allowedOrigins: [openUrl, strictUrl],
        });
        const ok = await b.fetch(`${openUrl}/echo`).then((r) => r.status);
        const refused = await b.fetch(`${strictUrl}/echo`).then(
          () => "no error",
          (e) => e.code,
        );
        let invalid = "accepted";
        await Baton.create({ baseUrl: location.origin, allowedOrigins: [`${openUrl}/path`] }).catch((e) => {
          invalid = e.code;
        });
        b.dispose();
        return { ok, refused, invalid };
      },
      [open.url, strict.url],
    );
    assert.equal(result.ok, 200);
    assert.equal(open.seen.length, 2);
    assert.match(open.seen[1].authorization ?? "", /^DPoP /);
    assert.ok(open.seen[1].device);
    // With a proof made for that URL.
    const proof = JSON.parse(Buffer.from(open.seen[1].dpop.split(".")[1], "base64url"));
    assert.equal(proof.htu, `${open.url}/echo`);
    assert.equal(result.refused, "cors_error");
    assert.equal(strict.seen.length, 0, "the preflight stopped the request");
    assert.equal(result.invalid, "invalid_options");
    await context.close();
  } finally {
    open.close();
    strict.close();
    await server.stop();
  }
});
