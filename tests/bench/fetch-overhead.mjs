// Per-call overhead of baton.fetch over plain fetch, in headless Chromium against a local
// baton-server (the packed package, same origin). Prints figures; asserts nothing.
//
// The variants run interleaved in one page, round after round (plain fetch, a Bearer session,
// a DPoP-bound session, and with BATON_BENCH_BASELINE_TGZ a DPoP session of another build of
// the package), each round in a new order, and the figures are medians over the rounds of each
// round's own differences: a shared machine's load drifts by more than the costs measured
// here, and a difference taken inside one round cancels it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, extname } from "node:path";
import { startServer, launchBrowser, uniqueEmail } from "../e2e/harness.mjs";

const ROUNDS = Number(process.env.BATON_BENCH_ROUNDS || 20);
const PER_ROUND = Number(process.env.BATON_BENCH_CALLS || 3000) / ROUNDS;
const baselineTgz = process.env.BATON_BENCH_BASELINE_TGZ;

const server = await startServer({ BATON_RATE_LIMITS: "off" });
const browser = await launchBrowser();

// Another build of the package, served to the page at /bench-base/ while it loads.
async function routeBaseline(page) {
  const dir = mkdtempSync(join(tmpdir(), "baton-bench-base-"));
  execFileSync("tar", ["-xzf", baselineTgz, "-C", dir]);
  const types = { ".js": "text/javascript", ".wasm": "application/wasm" };
  await page.route(`${server.url}/bench-base/**`, (route) => {
    const file = join(dir, "package", new URL(route.request().url()).pathname.slice("/bench-base/".length));
    if (!existsSync(file)) return route.fulfill({ status: 404 });
    return route.fulfill({ status: 200, contentType: types[extname(file)] || "application/octet-stream", body: readFileSync(file) });
  });
}

try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/healthz`);
  if (baselineTgz) await routeBaseline(page);
  const figures = await page.evaluate(
    async ([email, rounds, perRound, baseline]) => {
      const password = "correct horse battery";
      const reg = await fetch("/auth/register", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
      if (!reg.ok) throw new Error(`register: ${reg.status}`);
      // Each session in a module instance of its own (a query makes another instance), so the
      // DPoP switch of one does not reach the others.
      const session = async (module, options) => {
        const { Baton } = await import(module);
        const b = await Baton.create({ baseUrl: location.origin, crossTab: false, ...options });
        await b.login(email, password);
        return b;
      };
      const bearer = await session("/pkg/dist/index.js?bearer", { dpop: false, storageKey: "bench:bearer" });
      // The baseline signs in first: the origin's DPoP key is then one the baseline can sign
      // with (a build from before Ed25519 keys makes and uses only P-256 keys, and this one
      // uses a stored P-256 key first).
      const base = baseline ? await session("/bench-base/dist/index.js", { storageKey: "bench:base" }) : null;
      const bound = await session("/pkg/dist/index.js?dpop", { storageKey: "bench:dpop" });
      const keyKind = await new Promise((ok, fail) => {
        const r = indexedDB.open("baton-auth", 1);
        r.onerror = () => fail(r.error);
        r.onsuccess = () => {
          const get = r.result.transaction("kv").objectStore("kv").get("baton-auth:dpop-key");
          get.onsuccess = () => ok(get.result ? "P-256" : "Ed25519");
        };
      });
      if (!bound.session || !(await bound.getAccessToken()).startsWith("ey")) throw new Error("no DPoP session");
      const token = await bearer.getAccessToken();
      const variants = {
        plain: () => fetch("/api/ping", { headers: { Authorization: `Bearer ${token}`, "X-Device-ID": bearer.deviceId } }),
        bearer: () => bearer.fetch("/api/ping"),
        dpop: () => bound.fetch("/api/ping"),
      };
      if (base) variants.baseline = () => base.fetch("/api/ping");
      const names = Object.keys(variants);
      const samples = Object.fromEntries(names.map((n) => [n, []]));
      const means = Object.fromEntries(names.map((n) => [n, []]));
      const run = async (name, n) => {
        const f = variants[name];
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const s = performance.now();
          const res = await f();
          if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status}`);
          await res.arrayBuffer();
          const t = performance.now() - s;
          samples[name].push(t);
          sum += t;
        }
        return sum / n;
      };
      for (const name of names) await run(name, 100); // warm-up
      for (const name of names) samples[name].length = 0;
      for (let r = 0; r < rounds; r++) {
        const order = names.map((n, i) => names[(i + r) % names.length]);
        for (const name of order) means[name].push(await run(name, perRound));
      }
      // The client's own work alone: the same calls with the page's fetch answering at once
      // (no network, no server), so what remains is baton-auth's work per call and, with DPoP,
      // the proof (WebCrypto's signature included). Each round's mean from its total time.
      const realFetch = window.fetch;
      const own = Object.fromEntries(names.map((n) => [n, []]));
      window.fetch = async () => new Response('{"ok":true}', { status: 200 });
      try {
        for (let r = -2; r < rounds; r++) {
          const order = names.map((n, i) => names[(i + r + 2) % names.length]);
          for (const name of order) {
            const f = variants[name];
            const s = performance.now();
            for (let i = 0; i < 500; i++) await (await f()).arrayBuffer();
            if (r >= 0) own[name].push((performance.now() - s) / 500);
          }
        }
      } finally {
        window.fetch = realFetch;
      }
      // getAccessToken on a fresh token.
      const s = performance.now();
      for (let i = 0; i < 1000; i++) await bound.getAccessToken();
      const tokenUs = (performance.now() - s) / 1000 * 1000;
      // What a proof's signature costs the page: one signature by a non-extractable key, as
      // baton-auth makes per request (Ed25519 where WebCrypto has it, else P-256), back to
      // back and, as in baton.fetch, right after a call to the server (WebCrypto signs on
      // another thread, which waits idle between calls).
      const input = new TextEncoder().encode("x".repeat(400));
      const sign = {};
      for (const [kind, alg] of [
        ["Ed25519", { name: "Ed25519" }],
        ["P-256", { name: "ECDSA", namedCurve: "P-256" }],
      ]) {
        const key = await crypto.subtle.generateKey(alg, false, ["sign"]).catch(() => null);
        if (!key) continue;
        const once = () => crypto.subtle.sign({ name: alg.name, hash: "SHA-256" }, key.privateKey, input);
        const t = { warm: [], idle: [] };
        for (let i = 0; i < 2000; i++) {
          const s = performance.now();
          await once();
          t.warm.push(performance.now() - s);
        }
        for (let i = 0; i < 500; i++) {
          await (await realFetch("/healthz")).arrayBuffer();
          const s = performance.now();
          await once();
          t.idle.push(performance.now() - s);
        }
        sign[kind] = t;
      }
      // The round trip to WebCrypto's thread alone: a digest whose own work is about a
      // microsecond, right after a call to the server.
      const hop = [];
      for (let i = 0; i < 500; i++) {
        await (await realFetch("/healthz")).arrayBuffer();
        const s = performance.now();
        await crypto.subtle.digest("SHA-256", input);
        hop.push(performance.now() - s);
      }
      const refresh = {};
      for (const [name, b] of [["bearer", bearer], ["dpop", bound]]) {
        const t = [];
        for (let i = 0; i < 200; i++) {
          const s = performance.now();
          await b.refresh();
          t.push(performance.now() - s);
        }
        refresh[name] = t;
      }
      return { names, samples, means, own, tokenUs, sign, hop, refresh, keyKind };
    },
    [uniqueEmail("bench"), ROUNDS, PER_ROUND, Boolean(baselineTgz)],
  );
  const { names, samples, means } = figures;
  const sorted = (a) => [...a].sort((x, y) => x - y);
  const median = (a) => sorted(a)[a.length >> 1];
  const pct = (a, p) => sorted(a)[Math.min(a.length - 1, Math.floor(a.length * p))];
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const us = (ms) => (ms * 1000).toFixed(0);
  // Median over rounds of one variant's round mean minus another's in the same round.
  const diff = (a, b) => median(means[a].map((m, r) => m - means[b][r]));
  const label = {
    plain: "plain fetch",
    bearer: "baton.fetch, Bearer session",
    dpop: "baton.fetch, DPoP session (proof made and checked per call)",
    baseline: "baton.fetch, DPoP session, baseline package",
  };
  const calls = samples.plain.length;
  console.log(`\n### Client: baton.fetch vs plain fetch (headless Chromium, ${calls} sequential /api/ping calls per variant, ${ROUNDS} interleaved rounds; DPoP key ${figures.keyKind})\n`);
  console.log("| | median of round means µs | p50 µs | p99 µs |");
  console.log("|---|---|---|---|");
  for (const n of names) console.log(`| ${label[n]} | ${us(median(means[n]))} | ${us(pct(samples[n], 0.5))} | ${us(pct(samples[n], 0.99))} |`);
  console.log(`| overhead per call, Bearer (Bearer minus plain, median over rounds) | ${us(diff("bearer", "plain"))} | ${us(pct(samples.bearer, 0.5) - pct(samples.plain, 0.5))} | |`);
  console.log(`| DPoP's cost per call (DPoP minus Bearer, median over rounds) | ${us(diff("dpop", "bearer"))} | ${us(pct(samples.dpop, 0.5) - pct(samples.bearer, 0.5))} | |`);
  if (names.includes("baseline")) {
    console.log(`| baseline's DPoP cost per call (baseline minus Bearer) | ${us(diff("baseline", "bearer"))} | ${us(pct(samples.baseline, 0.5) - pct(samples.bearer, 0.5))} | |`);
    console.log(`| this package minus the baseline (DPoP) | ${us(diff("dpop", "baseline"))} | | |`);
  }
  const ownDiff = (a, b) => median(figures.own[a].map((m, r) => m - figures.own[b][r]));
  console.log(`\n#### The page's own work per call (fetch answering at once, ${ROUNDS} interleaved rounds of 500 calls)\n`);
  console.log("| | median of round means µs |");
  console.log("|---|---|");
  for (const n of names) console.log(`| ${label[n]} | ${us(median(figures.own[n]))} |`);
  console.log(`| Bearer minus plain | ${us(ownDiff("bearer", "plain"))} |`);
  console.log(`| DPoP minus Bearer (the page's share of DPoP's cost) | ${us(ownDiff("dpop", "bearer"))} |`);
  if (names.includes("baseline")) console.log(`| this package minus the baseline (DPoP) | ${us(ownDiff("dpop", "baseline"))} |`);
  console.log(`\n- getAccessToken() on a fresh token: ${figures.tokenUs.toFixed(1)} µs per call`);
  for (const [kind, t] of Object.entries(figures.sign))
    console.log(`- a DPoP proof's signature (WebCrypto, ${kind}): back to back ${us(mean(t.warm))} µs mean, right after a call to the server ${us(mean(t.idle))} µs mean`);
  console.log(`- WebCrypto SHA-256 of 400 bytes right after a call to the server (the round trip to its thread): ${us(mean(figures.hop))} µs mean`);
  const r = figures.refresh;
  console.log(
    `- baton.refresh(), sequential: Bearer ${us(mean(r.bearer))} µs mean (p99 ${us(pct(r.bearer, 0.99))}), ` +
      `DPoP ${us(mean(r.dpop))} µs mean (p99 ${us(pct(r.dpop, 0.99))})`,
  );
} finally {
  await browser.close();
  await server.stop();
}
