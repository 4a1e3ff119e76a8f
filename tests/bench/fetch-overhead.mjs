// Per-call overhead of baton.fetch over plain fetch, in headless Chromium against a local
// baton-server (the packed package, same origin). Prints figures; asserts nothing.
import { startServer, launchBrowser, signIn, uniqueEmail } from "../e2e/harness.mjs";

const N = Number(process.env.BATON_BENCH_CALLS || 3000);
const server = await startServer({ BATON_RATE_LIMITS: "off" });
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(server.url);
  await signIn(page, uniqueEmail("bench"));
  const r = await page.evaluate(async (n) => {
    const b = window.__demo.baton;
    const token = await b.getAccessToken();
    const plain = () => fetch("/api/ping", { headers: { Authorization: `Bearer ${token}`, "X-Device-ID": b.deviceId } });
    const wrapped = () => b.fetch("/api/ping");
    const run = async (f) => {
      const t = [];
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        const res = await f();
        await res.arrayBuffer();
        t.push(performance.now() - s);
      }
      t.sort((a, b) => a - b);
      return { mean: t.reduce((a, b) => a + b, 0) / n, p50: t[n >> 1], p99: t[Math.floor(n * 0.99)] };
    };
    await run(plain); // warm-up
    await run(wrapped);
    const p = await run(plain);
    const w = await run(wrapped);
    // The client's own work, without the network: getAccessToken on a fresh token.
    const s = performance.now();
    for (let i = 0; i < n; i++) await b.getAccessToken();
    const tokenUs = ((performance.now() - s) / n) * 1000;
    return { p, w, tokenUs };
  }, N);
  const us = (ms) => (ms * 1000).toFixed(0);
  console.log(`\n### Client: baton.fetch vs plain fetch (headless Chromium, ${N} sequential /api/ping calls)\n`);
  console.log("| | mean µs | p50 µs | p99 µs |");
  console.log("|---|---|---|---|");
  console.log(`| plain fetch | ${us(r.p.mean)} | ${us(r.p.p50)} | ${us(r.p.p99)} |`);
  console.log(`| baton.fetch | ${us(r.w.mean)} | ${us(r.w.p50)} | ${us(r.w.p99)} |`);
  console.log(`| overhead per call | ${us(r.w.mean - r.p.mean)} | ${us(r.w.p50 - r.p.p50)} | |`);
  console.log(`\n- getAccessToken() on a fresh token: ${r.tokenUs.toFixed(1)} µs per call`);
} finally {
  await browser.close();
  await server.stop();
}
