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
  const probes = [];
  const server = createServer((req, res) => {
    res.setHeader("Access-Control-Allow-Origin", "*");
    if (req.method === "HEAD") {
      // baton-auth's check whether a server that gave no readable answer is there at all.
      probes.push({ authorization: req.headers.authorization, device: req.headers["x-device-id"] });
      res.end();
      return;
    }
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
  return { url: `http://127.0.0.1:${server.address().port}`, seen, probes, close: () => server.close() };
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
    // Only the plain probe that told the refusal from an outage reached it, with nothing attached.
    assert.deepEqual(strict.probes, [{ authorization: undefined, device: undefined }]);
    assert.equal(result.invalid, "invalid_options");
    await context.close();
  } finally {
    open.close();
    strict.close();
    await server.stop();
  }
});

test("26. a server whose CORS answer refuses the page is a cors_error, a server that is down a network_error", async () => {
  const server = await startServer(); // no BATON_CORS_ORIGINS: no other origin is allowed
  const refusing = await thirdParty("Content-Type");
  // A port that nothing listens on: bound, then closed.
  const down = await thirdParty("Content-Type");
  down.close();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await signIn(page, uniqueEmail("cors"));
    const port = new URL(server.url).port;
    const result = await page.evaluate(
      async ([other, downUrl, refusingUrl]) => {
        const { Baton } = await import("baton-auth");
        const outcome = (p) => p.then(
          () => "no error",
          (e) => `${e.code}: ${e.message}`,
        );
        // The same Baton server under another origin, which its CORS settings do not list.
        const elsewhere = await Baton.create({ baseUrl: other, storageKey: "t26:a", crossTab: false });
        const wrongOrigin = await outcome(elsewhere.login("nobody@example.com", "correct horse battery"));
        elsewhere.dispose();
        const gone = await Baton.create({ baseUrl: downUrl, storageKey: "t26:b", crossTab: false });
        const serverDown = await outcome(gone.requestCode("nobody@example.com"));
        gone.dispose();
        // baton.fetch to listed APIs: one down, one refusing the headers.
        const b = await Baton.create({ baseUrl: location.origin, storageKey: "baton-demo:body", allowedOrigins: [downUrl, refusingUrl] });
        const apiDown = await outcome(b.fetch(`${downUrl}/echo`));
        const apiRefusing = await outcome(b.fetch(`${refusingUrl}/echo`));
        b.dispose();
        return { wrongOrigin, serverDown, apiDown, apiRefusing };
      },
      [`http://localhost:${port}`, down.url, refusing.url],
    );
    assert.match(result.wrongOrigin, /^cors_error: http:\/\/localhost:\d+ answered, but its CORS answer/);
    assert.match(result.serverDown, /^network_error: http:\/\/127\.0\.0\.1:\d+ could not be reached$/);
    assert.match(result.apiDown, /^network_error: /);
    assert.match(result.apiDown, /could not be reached$/);
    assert.match(result.apiRefusing, /^cors_error: http:\/\/127\.0\.0\.1:\d+ answered/);
    assert.equal(refusing.seen.length, 0);
    await context.close();
  } finally {
    refusing.close();
    await server.stop();
  }
});
