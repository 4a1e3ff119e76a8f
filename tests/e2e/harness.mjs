// End-to-end harness: a real baton-server process, real headless Chromium (Debian's, driven by
// playwright-core), and baton-auth as `npm pack` produced it.
import { createHmac } from "node:crypto";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { createServer } from "node:net";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(ROOT, "target/e2e-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

/** The tarball made by `npm pack` (BATON_PACKAGE_TGZ, else packed now into target/). */
export function packedTarball() {
  if (process.env.BATON_PACKAGE_TGZ) return process.env.BATON_PACKAGE_TGZ;
  const out = join(ROOT, "target/npm-pack");
  mkdirSync(out, { recursive: true });
  const name = execFileSync("npm", ["pack", "--silent", "--pack-destination", out], {
    cwd: join(ROOT, "npm-package"),
    encoding: "utf8",
  }).trim().split("\n").pop();
  return join(out, name);
}

let unpacked = null;
/** The packed package unpacked once (its `package/` folder). */
export function unpackedPackage() {
  if (!unpacked) {
    const dir = mkdtempSync(join(tmpdir(), "baton-pkg-"));
    execFileSync("tar", ["-xzf", packedTarball(), "-C", dir]);
    unpacked = join(dir, "package");
  }
  return unpacked;
}

/** Starts baton-server serving demo-web/ and the packed package at /pkg. */
export async function startServer(env = {}) {
  const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
  if (!existsSync(bin)) throw new Error(`${bin} not found: build baton-server first`);
  const dir = mkdtempSync(join(tmpdir(), "baton-e2e-"));
  const child = spawn(bin, [], {
    env: {
      ...process.env,
      BATON_BIND: "127.0.0.1:0",
      BATON_DATABASE_URL: `sqlite://${join(dir, "baton.db")}`,
      BATON_COOKIE_SECURE: "false",
      BATON_STATIC_DIR: join(ROOT, "demo-web"),
      BATON_PACKAGE_DIR: unpackedPackage(),
      BATON_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((ok, fail) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", (line) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(line.trim());
      m ? ok(m[1]) : fail(new Error(`unexpected first line: ${line}`));
    });
    child.once("exit", (code) => fail(new Error(`baton-server exited with ${code}`)));
  });
  return {
    url,
    databaseUrl: `sqlite://${join(dir, "baton.db")}`,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
}

/** A browser with a profile on disk: closing and launching it again is a browser restart. */
export async function launchProfile(dir) {
  return chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
}

/** Registers and signs in through the demo page's form. */
export async function signIn(page, email, { register = true, transport = "body", remember = false } = {}) {
  await page.waitForFunction(() => document.body.dataset.state === "signed-out");
  await page.fill("#email", email);
  await page.fill("#password", "correct horse battery");
  await page.selectOption("#transport", transport);
  if (remember) await page.check("#remember");
  await page.click(register ? "#btn-register" : "#btn-login");
  await page.waitForFunction(() => document.body.dataset.state === "signed-in", null, { timeout: 15000 });
}

export function uniqueEmail(tag) {
  return `${tag}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

/** Counts requests to a path made by a page (and its workers), from the browser's side. */
export function countRequests(context, path) {
  const counter = { n: 0 };
  context.on("request", (req) => {
    if (new URL(req.url()).pathname === path && req.method() === "POST") counter.n++;
  });
  return counter;
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export function listArtifacts() {
  return readdirSync(ARTIFACTS);
}

/** The demo's orders service (verify/examples/demo-api.rs, on baton-verify) for `baton`. */
export async function startOrdersService(baton, secret) {
  const bin = process.env.BATON_DEMO_API_BIN || join(ROOT, "target/debug/examples/demo-api");
  if (!existsSync(bin)) throw new Error(`${bin} not found: cargo build -p baton-verify --example demo-api`);
  const child = spawn(bin, [], {
    env: { ...process.env, BATON_URL: baton, BATON_INTROSPECTION_TOKEN: secret, DEMO_API_BIND: "127.0.0.1:0", DEMO_API_ORIGINS: baton },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", (l) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(l.trim());
      m ? ok(m[1]) : fail(new Error(`unexpected first line: ${l}`));
    });
    child.once("exit", (code) => fail(new Error(`demo-api exited with ${code}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

/** A real SMTP server (aiosmtpd, tests/smtp/sink.py) keeping each mail as a file; `mail(n)` waits for the n-th. */
export async function smtpSink() {
  const dir = mkdtempSync(join(tmpdir(), "baton-mail-"));
  const child = spawn("/usr/bin/python3", [join(ROOT, "tests/smtp/sink.py"), dir], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", (l) => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(l);
      m ? ok(Number(m[1])) : fail(new Error(`unexpected first line: ${l}`));
    });
    child.once("exit", (code) => fail(new Error(`the SMTP server exited with ${code}`)));
  });
  // The n-th mail, once it arrived, with quoted-printable undone.
  const mail = async (n) => {
    const file = join(dir, `${String(n).padStart(4, "0")}.eml`);
    for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
    const raw = readFileSync(file, "utf8");
    return raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  };
  return { port, mail, stop: () => child.kill() };
}

/** RFC 6238: the TOTP code of a base32 secret `offset` 30-second steps from now. */
export function totp(secret, offset = 0) {
  let bits = "";
  for (const c of secret) bits += "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigInt64BE(BigInt(Math.floor(Date.now() / 30_000) + offset));
  const h = createHmac("sha1", key).update(counter).digest();
  const o = h[19] & 15;
  const bin = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(bin % 1_000_000).padStart(6, "0");
}

/** A loopback port free now (for a server whose URL must be known before it starts). */
export function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}
