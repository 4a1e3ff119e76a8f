// A real Next.js App Router app (tests/next-app) built with `next build` against the packed
// tarball and run with `next start`: baton-auth/next's proxy serves Baton's endpoints on the
// app's origin; a server component shows the user; a client component uses baton.fetch; the
// access token expires while ten server components render at once: one rotation, no sign-out;
// logout in the browser ends the server's session too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, packedTarball, startServer, launchBrowser, uniqueEmail, screenshot, freePort } from "./harness.mjs";

const SECRET = "next-introspection-secret-of-32-bytes";
let baton;
let app;
let browser;

// The app, built inside the repository so that Turbopack reaches tests/node_modules.
function buildApp(env) {
  const dir = join(ROOT, "target/e2e-next-app");
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(ROOT, "tests/next-app"), dir, { recursive: true });
  const modules = join(dir, "node_modules");
  mkdirSync(join(modules, "baton-auth"), { recursive: true });
  execFileSync("tar", ["-xzf", packedTarball(), "-C", join(modules, "baton-auth"), "--strip-components=1"]);
  for (const dep of readdirSync(join(ROOT, "tests/node_modules"))) {
    if (dep !== "baton-auth") symlinkSync(join(ROOT, "tests/node_modules", dep), join(modules, dep), "dir");
  }
  const next = join(ROOT, "tests/node_modules/next/dist/bin/next");
  execFileSync(process.execPath, [next, "build"], { cwd: dir, env, stdio: ["ignore", "ignore", "inherit"] });
  return { dir, next };
}

before(async () => {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  baton = await startServer({ BATON_ACCESS_TTL: "6s", BATON_CORS_ORIGINS: origin, BATON_INTROSPECTION_TOKEN: SECRET, BATON_RATE_LIMITS: "relaxed" });
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: "1", BATON_REPO_ROOT: ROOT, BATON_URL: baton.url, BATON_INTROSPECTION_TOKEN: SECRET, BATON_REFRESH_MARGIN: "2" };
  const { dir, next } = buildApp(env);
  const child = spawn(process.execPath, [next, "start", "-p", String(port), "-H", "127.0.0.1"], { cwd: dir, env, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).on("line", (l) => /Ready in/.test(l) && ok());
    child.once("exit", (code) => fail(new Error(`next start exited with ${code}`)));
  });
  app = { origin, stop: () => child.kill() };
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  app?.stop();
  await baton?.stop();
});

async function rotations() {
  const text = await (await fetch(`${baton.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('auth_token_refresh_total{status="success"}'));
  return line ? Number(line.split(" ").pop()) : 0;
}

test("34. Next.js: server components see the browser's session; ten render at once after expiry with one rotation; logout ends it", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${app.origin}/`);
  await page.waitForFunction(() => document.getElementById("status")?.textContent === "signed-out");
  const email = uniqueEmail("next");
  await page.evaluate(async (email) => {
    await window.__baton.register(email, "correct horse battery");
    await window.__baton.login(email, "correct horse battery");
  }, email);
  await page.waitForFunction(() => document.getElementById("email")?.textContent);
  assert.equal(await page.textContent("#email"), email);
  const userId = await page.evaluate(() => window.__baton.session.userId);
  // The cookies are the app's, HttpOnly: no script of the page reads a token.
  const cookies = await context.cookies(app.origin);
  for (const name of ["baton_refresh", "baton_access", "baton_device"]) {
    const c = cookies.find((c) => c.name === name);
    assert.ok(c && c.httpOnly && c.sameSite === "Lax", `${name}: ${JSON.stringify(c)}`);
  }
  const readable = await page.evaluate(() => document.cookie);
  assert.ok(!/baton_(refresh|access|device)|eyJ/.test(readable), `scripts read: ${readable}`);

  // The page closes (its SDK no longer refreshes) and the access token expires; then one
  // request renders the dashboard's ten server components.
  await page.close();
  await new Promise((r) => setTimeout(r, 4500));
  const before = await rotations();
  const header = (await context.cookies(app.origin)).map((c) => `${c.name}=${c.value}`).join("; ");
  const res = await fetch(`${app.origin}/dashboard`, { headers: { cookie: header } });
  const html = await res.text();
  assert.equal(res.status, 200);
  const panels = [...html.matchAll(/<li class="panel">panel (\d+): ([^<]*)<\/li>/g)];
  assert.equal(panels.length, 10);
  assert.ok(panels.every((m) => m[2] === userId), "ten panels show the user");
  assert.ok(html.includes(`signed in as ${userId}`));
  assert.equal((await rotations()) - before, 1, "one rotation");
  assert.ok(res.headers.getSetCookie().some((c) => c.startsWith("baton_refresh=")), "the new refresh cookie goes to the browser");

  // In the browser (the cookies it holds are the rotated ones' predecessors: within the
  // grace, from the same device, they are answered alike).
  const tab = await context.newPage();
  await tab.goto(`${app.origin}/dashboard`);
  assert.equal(await tab.textContent("#who"), `signed in as ${userId}`);
  await tab.waitForFunction(() => document.getElementById("email")?.textContent);
  await screenshot(tab, "next-dashboard");

  // Logout in the browser ends the session the server renders see.
  await tab.click("#logout");
  await tab.waitForFunction(() => document.getElementById("status")?.textContent === "signed-out");
  await tab.goto(`${app.origin}/dashboard`);
  assert.equal(await tab.textContent("#who"), "nobody is signed in");
  await context.close();
});
