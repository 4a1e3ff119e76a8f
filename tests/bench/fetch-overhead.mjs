// Per-call overhead of baton.fetch over plain fetch, in headless Chromium against a local
// baton-server (the packed package, same origin). Prints figures; asserts nothing.
import { startServer, launchBrowser, signIn, uniqueEmail } from "../e2e/harness.mjs";

const N = Number(process.env.BATON_BENCH_CALLS || 3000);
const server = await startServer({ BATON_RATE_LIMITS: "off" });
const browser = await launchBrowser();
// Runs `n` sequential calls of `f` in the page; mean, p50 and p99 in ms.
const timing = `async (f, n) => {
  const t = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const res = await f();
    if (res && res.arrayBuffer) await res.arrayBuffer();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return { mean: t.reduce((a, b) => a + b, 0) / n, p50: t[n >> 1], p99: t[Math.floor(n * 0.99)] };
}`;

try {
  // A Bearer session (`dpop: false`): the wrapper's own cost against plain fetch.
  const bearer = await browser.newPage();
  await bearer.goto(`${server.url}/?dpop=off`);
  await signIn(bearer, uniqueEmail("bench"));
  const r = await bearer.evaluate(
    async ([n, timing]) => {
      const run = eval(timing);
      const b = window.__demo.baton;
      const token = await b.getAccessToken();
      const plain = () => fetch("/api/ping", { headers: { Authorization: `Bearer ${token}`, "X-Device-ID": b.deviceId } });
      const wrapped = () => b.fetch("/api/ping");
      await run(plain, n); // warm-up
      await run(wrapped, n);
      const p = await run(plain, n);
      const w = await run(wrapped, n);
      // The client's own work, without the network: getAccessToken on a fresh token.
      const s = performance.now();
      for (let i = 0; i < n; i++) await b.getAccessToken();
      const tokenUs = ((performance.now() - s) / n) * 1000;
      const refresh = await run(() => b.refresh(), Math.min(n, 300));
      return { p, w, tokenUs, refresh };
    },
    [N, timing],
  );
  // The default, a DPoP-bound session: every call makes a proof, the server checks it.
  const bound = await browser.newPage();
  await bound.goto(server.url);
  await signIn(bound, uniqueEmail("bench-dpop"));
  const d = await bound.evaluate(
    async ([n, timing]) => {
      const run = eval(timing);
      const b = window.__demo.baton;
      const wrapped = () => b.fetch("/api/ping");
      await run(wrapped, n); // warm-up
      const w = await run(wrapped, n);
      const refresh = await run(() => b.refresh(), Math.min(n, 300));
      // What a proof costs the page: one ECDSA P-256 signature by a non-extractable key,
      // as baton-auth makes per request (the token hash is computed once per token).
      const key = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
      const input = new TextEncoder().encode("x".repeat(400));
      const sign = await run(() => crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey, input), n);
      return { w, refresh, sign };
    },
    [N, timing],
  );
  const us = (ms) => (ms * 1000).toFixed(0);
  console.log(`\n### Client: baton.fetch vs plain fetch (headless Chromium, ${N} sequential /api/ping calls)\n`);
  console.log("| | mean µs | p50 µs | p99 µs |");
  console.log("|---|---|---|---|");
  console.log(`| plain fetch | ${us(r.p.mean)} | ${us(r.p.p50)} | ${us(r.p.p99)} |`);
  console.log(`| baton.fetch, Bearer session | ${us(r.w.mean)} | ${us(r.w.p50)} | ${us(r.w.p99)} |`);
  console.log(`| baton.fetch, DPoP session (proof made and checked per call) | ${us(d.w.mean)} | ${us(d.w.p50)} | ${us(d.w.p99)} |`);
  console.log(`| overhead per call, Bearer | ${us(r.w.mean - r.p.mean)} | ${us(r.w.p50 - r.p.p50)} | |`);
  console.log(`| DPoP's cost per call (DPoP minus Bearer) | ${us(d.w.mean - r.w.mean)} | ${us(d.w.p50 - r.w.p50)} | |`);
  console.log(`\n- getAccessToken() on a fresh token: ${r.tokenUs.toFixed(1)} µs per call`);
  console.log(`- a DPoP proof's signature (WebCrypto ECDSA P-256, sequential): ${us(d.sign.mean)} µs mean, p99 ${us(d.sign.p99)} µs`);
  console.log(
    `- baton.refresh(), sequential: Bearer ${us(r.refresh.mean)} µs mean (p99 ${us(r.refresh.p99)}), ` +
      `DPoP ${us(d.refresh.mean)} µs mean (p99 ${us(d.refresh.p99)}); with DPoP the key is read ` +
      `again from IndexedDB and a proof made for every refresh`,
  );
} finally {
  await browser.close();
  await server.stop();
}
