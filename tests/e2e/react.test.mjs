// baton-auth/react in a real React app: Vite builds tests/react-app against the packed
// tarball (unpacked into the app's node_modules, as npm install does), baton-server serves the
// build, Chromium runs it under StrictMode.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "vite";
import { ROOT, packedTarball, startServer, launchBrowser, uniqueEmail } from "./harness.mjs";

async function buildApp() {
  const dir = mkdtempSync(join(tmpdir(), "baton-react-app-"));
  cpSync(join(ROOT, "tests/react-app"), dir, { recursive: true });
  const modules = join(dir, "node_modules");
  mkdirSync(join(modules, "baton-auth"), { recursive: true });
  execFileSync("tar", ["-xzf", packedTarball(), "-C", join(modules, "baton-auth"), "--strip-components=1"]);
  for (const dep of ["react", "react-dom", "scheduler"]) {
    symlinkSync(join(ROOT, "tests/node_modules", dep), join(modules, dep), "dir");
  }
  // React's development build: StrictMode double-invokes renders and effects only there.
  await build({
    root: dir,
    mode: "development",
    logLevel: "warn",
    define: { "process.env.NODE_ENV": JSON.stringify("development") },
    // account.jsx holds the README's example in JSX (React's automatic runtime).
    oxc: { jsx: { runtime: "automatic" } },
    plugins: [
      {
        name: "docs-placeholders",
        transform: (code, id) => (id.endsWith(".jsx") ? code.replaceAll('"https://auth.example.com"', "location.origin") : null),
      },
    ],
    build: {
      outDir: join(dir, "dist"),
      minify: false,
      rollupOptions: { input: { main: join(dir, "index.html"), account: join(dir, "account.html") } },
    },
  });
  return join(dir, "dist");
}

let app;
before(async () => {
  app = await buildApp();
});

test("13. baton-auth/react: provider, useBaton and useSession under StrictMode, built by Vite", async () => {
  const server = await startServer({ BATON_STATIC_DIR: app });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    // Each Baton client opens one BroadcastChannel: count them.
    await page.addInitScript(() => {
      const Native = window.BroadcastChannel;
      window.channels = 0;
      window.BroadcastChannel = class extends Native {
        constructor(name) {
          super(name);
          if (name.startsWith("baton-auth:")) window.channels++;
        }
      };
    });
    const email = uniqueEmail("react");
    await page.goto(`${server.url}/?email=${encodeURIComponent(email)}`);
    const text = (id) => page.textContent(`#${id}`);
    await page.waitForSelector("#state");
    assert.equal(await text("state"), "signed out");
    await page.waitForTimeout(100);
    assert.equal(await page.evaluate(() => window.channels), 1, "StrictMode made more than one client");

    // The client StrictMode's double effects leave behind is the live one, not a disposed one.
    await page.click("#login");
    await page.waitForFunction(
      (e) => document.querySelector("#state").textContent === `signed in as ${e}` || document.querySelector("#error").textContent,
      email,
    );
    assert.equal(await text("error"), "");
    assert.equal(await text("error"), "");

    // A refresh re-renders with the new session; then the snapshot is stable (no render loop).
    const before = await text("expires");
    await page.click("#refresh");
    await page.waitForFunction((b) => document.querySelector("#expires").textContent !== b, before);
    const renders = await page.evaluate(() => window.app.renders());
    await page.waitForTimeout(500);
    assert.equal(await page.evaluate(() => window.app.renders()), renders, "renders without a change");

    // A reload restores the session through the provider.
    await page.reload();
    await page.waitForFunction((e) => document.querySelector("#state")?.textContent === `signed in as ${e}`, email);

    await page.click("#logout");
    await page.waitForFunction(() => document.querySelector("#state").textContent === "signed out");

    // Unmounting disposes the client the provider created.
    const code = await page.evaluate(async () => {
      const b = window.app.baton;
      window.unmountApp();
      await new Promise((ok) => setTimeout(ok, 50));
      return b.getAccessToken().then(() => "still alive", (e) => e.code);
    });
    assert.equal(code, "disposed");
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("13. the README's React example, in JSX: signs in, shows the address, signs out", async () => {
  const server = await startServer({ BATON_STATIC_DIR: app });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(e.message));
    const email = uniqueEmail("readme-react");
    await page.goto(`${server.url}/account.html?email=${encodeURIComponent(email)}`);
    await page.click("#login");
    await page.click(`button:text-is("${email}")`);
    await page.waitForSelector("#login");
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
