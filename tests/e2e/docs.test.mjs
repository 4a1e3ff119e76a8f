// Every code example of the READMEs and docs/ runs as written, so none can rot. The line before
// each fenced block says how it runs, in a comment the rendered page does not show:
//
//   <!-- example: file PATH -->   the block is PATH, byte for byte, and a test runs PATH
//   <!-- example: in PATH -->     the block's lines appear in PATH, in order, and a test runs PATH
//   <!-- example: browser -->     JavaScript in Chromium, on a page that loads baton-auth with the
//                                 import map of the `html` example (imports become import())
//   <!-- example: html -->        that import map
//   <!-- example: node -->        a Node module, beside baton-auth and express as npm installs them
//   <!-- example: python -->      python3
//   <!-- example: sh -->          bash, in a folder of its own; `sh serves`: a server that must
//                                 come up (then it is stopped)
//   <!-- example: nginx -->       an nginx server block, run by nginx in front of the server that
//                                 `sh behind-nginx` starts; a client calls Baton through it
//   <!-- example: xtask -->       cargo xtask commands: each exists, with the options named
//   <!-- example: paths -->       a code tour: every line that names a path names one that exists
//   <!-- example: event -->       an audit event line: the shape a server writes
//
// What an example leaves to the reader is filled in by the test: https://auth.example.com is a
// Baton server, https://api.example.com the orders service (an API that takes its tokens),
// /etc/baton and /path/to/... folders of the test, and variables such as `email` or `token`
// (see `given` below). Anything after the marker's kind is an expression the example's result
// must satisfy.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as tcpServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, launchBrowser, packedTarball, smtpSink, startOrdersService, startServer, unpackedPackage, uniqueEmail } from "./harness.mjs";

const DOCS = ["README.md", "BENCHMARKS.md", "npm-package/README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const KINDS = ["file", "in", "browser", "html", "node", "python", "sh", "nginx", "xtask", "paths", "event"];

function examples() {
  const found = [];
  for (const doc of DOCS) {
    const lines = readFileSync(join(ROOT, doc), "utf8").split("\n");
    for (let i = 0; i < lines.length; i++) {
      const fence = /^```(\w*)$/.exec(lines[i]);
      if (!fence) continue;
      const end = lines.indexOf("```", i + 1);
      assert.ok(end > i, `${doc}:${i + 1}: a code block without its closing fence`);
      const marker = /^<!-- example: (\S+)\s*(.*?)\s*-->$/.exec(lines[i - 1] ?? "");
      found.push({
        where: `${doc}:${i + 1}`,
        kind: marker?.[1],
        arg: marker?.[2] ?? "",
        code: lines.slice(i + 1, end).join("\n") + "\n",
      });
      i = end;
    }
  }
  return found;
}
const EXAMPLES = examples();
const of = (kind) => EXAMPLES.filter((e) => e.kind === kind);

const SECRET = "docs-example-introspection-secret-0123456789";
const PASSWORD = "correct horse battery";
let env; // the Baton server, the orders service, mail, and what the examples are given

const freePort = () =>
  new Promise((ok) => {
    const s = tcpServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function post(path, body, headers = {}) {
  const res = await fetch(`${env.url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

// The page the browser examples run on: the `html` example's import map, and baton-auth
// installed under node_modules as npm would.
function examplePage(dir) {
  const [html] = of("html");
  assert.ok(html, "no `html` example: the browser examples need its import map");
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  cpSync(unpackedPackage(), join(dir, "node_modules/baton-auth"), { recursive: true });
  writeFileSync(
    join(dir, "index.html"),
    `<!doctype html><meta charset="utf-8"><title>docs examples</title>\n${html.code}` +
      `<script type="module">import { Baton } from "baton-auth"; window.loaded = typeof Baton;</script>\n`,
  );
}

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-docs-"));
  const smtp = await smtpSink();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  examplePage(join(dir, "page"));
  const events = join(dir, "events.jsonl");
  const server = await startServer({
    BATON_BIND: `127.0.0.1:${port}`,
    BATON_STATIC_DIR: join(dir, "page"),
    BATON_INTROSPECTION_TOKEN: SECRET,
    BATON_EVENTS_FILE: events,
    BATON_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    BATON_MAIL_FROM: "Baton docs <no-reply@baton.test>",
    BATON_MAGIC_LINK_URL: `${url}/`,
  });
  const orders = await startOrdersService(server.url, SECRET);
  // The browser examples' account. Its address is proven by the email example, which ends
  // the sessions set up before (and the password): so the token the backend examples are
  // given is of an account of its own, signed in without a DPoP proof (a Bearer token).
  const email = uniqueEmail("docs");
  env = { dir, url, server, orders, smtp, mails: 0, events, email };
  assert.equal((await post("/auth/register", { email, password: PASSWORD })).status, 201);
  const apiUser = uniqueEmail("docs-api");
  assert.equal((await post("/auth/register", { email: apiUser, password: PASSWORD })).status, 201);
  const login = await post("/auth/login", { email: apiUser, password: PASSWORD }, { "X-Device-ID": "docs-example-device" });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  env.token = login.body.access_token;
  env.apiUser = apiUser;
  // The admin examples' token, made as the docs say: on the server's machine, its database.
  const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
  env.adminToken = run(bin, ["admin", "token", "create", "--name", "docs", "--scopes", "users:read,users:write,sessions:write,audit:read"], {
    env: { ...withoutCargo(process.env), BATON_DATABASE_URL: server.databaseUrl, BATON_LOG: "warn" },
  }).split("\n")[0];
  env.sub = JSON.parse(Buffer.from(env.token.split(".")[1], "base64url")).sub;
  env.browser = await launchBrowser();
});

after(async () => {
  await env?.browser?.close();
  env?.orders?.stop();
  await env?.server?.stop();
  env?.smtp?.stop();
});

/** The example with the reader's placeholders filled in. */
function filled(code, extra = {}) {
  const places = {
    "https://auth.example.com": env.url,
    "https://api.example.com": env.orders.url,
    "/etc/baton": join(env.dir, "etc"),
    ...extra,
  };
  let out = code;
  for (const [from, to] of Object.entries(places)) out = out.split(from).join(to);
  return out;
}

const head = () => run("git", ["rev-parse", "HEAD"], { cwd: ROOT }).trim();
const run = (cmd, args, options = {}) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...options });

test("29. every code block of the docs says how the tests run it", () => {
  assert.ok(EXAMPLES.length >= 15, `only ${EXAMPLES.length} examples found`);
  const unmarked = EXAMPLES.filter((e) => !KINDS.includes(e.kind)).map((e) => `${e.where} (${e.kind ?? "no marker"})`);
  assert.deepEqual(unmarked, [], "code blocks the tests do not run");
});

test("29. examples that are files of the repository are those files, and a test runs them", () => {
  const testSources = [
    ...readdirSync(join(ROOT, "tests/e2e")).map((f) => join(ROOT, "tests/e2e", f)),
    join(ROOT, "xtask/src/main.rs"),
  ]
    .map((f) => readFileSync(f, "utf8"))
    .join("\n");
  for (const e of of("file")) {
    assert.equal(e.code, readFileSync(join(ROOT, e.arg), "utf8"), `${e.where} differs from ${e.arg}`);
    const name = basename(e.arg).replace(/\.[a-z]+$/, "");
    assert.ok(testSources.includes(name), `${e.where}: no test runs ${e.arg}`);
  }
  for (const e of of("in")) {
    const target = readFileSync(join(ROOT, e.arg), "utf8").split("\n").map((l) => l.trim());
    const lines = e.code.trimEnd().split("\n").map((l) => l.trim());
    const at = target.findIndex((_, i) => lines.every((l, k) => target[i + k] === l));
    assert.ok(at >= 0, `${e.where}: not found as written in ${e.arg}`);
  }
});

test("29. the browser examples run in Chromium as written", async () => {
  assert.ok(of("browser").length >= 3);
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  // The code the user would type in: from the mail the example asked for.
  await page.exposeFunction("codeFromMail", async () => {
    const mail = await env.smtp.mail(++env.mails);
    return /code: (\d{6})/.exec(mail)[1];
  });
  await page.goto(`${env.url}/`);
  await page.waitForFunction(() => window.loaded === "function");
  const given = `
    const email = ${JSON.stringify(env.email)}, password = ${JSON.stringify(PASSWORD)};
    const showLoginForm = () => {};
    const promptForCode = () => window.codeFromMail();
    const { Baton } = await import("baton-auth");
    const baton = globalThis.docsBaton ??= await Baton.create({ baseUrl: location.origin, storageKey: "docs:given" });`;
  const inPage = (e) => {
    // Imports become dynamic imports; the example's own `baton` shadows the given one.
    const code = filled(e.code)
      .replace(/^import \{([^}]*)\} from "([^"]+)";$/gm, 'const {$1} = await import("$2");')
      .replace(/^import "([^"]+)";$/gm, 'await import("$1");');
    return page.evaluate(`(async () => { ${code.includes("const baton =") ? given.replace(/const baton = .*$/m, "") : given}\n{\n${code}\nreturn ${e.arg || "true"};\n} })()`);
  };
  for (const e of of("browser")) {
    if (e.code.includes("verifyMagicLink")) {
      // The page a sign-in link opens: ask for a mail, follow its link, then run the example.
      await post("/auth/otp/request", { email: env.email });
      const mail = await env.smtp.mail(++env.mails);
      const link = new RegExp(`${env.url}/\\?token=[A-Za-z0-9_-]+`).exec(mail)[0];
      await page.evaluate(() => globalThis.docsBaton?.logout().catch(() => {}));
      await page.goto(link);
      await page.waitForFunction(() => window.loaded === "function");
    }
    const timeout = new Promise((_, fail) => setTimeout(() => fail(new Error(`${e.where}: no answer in 30 s`)), 30_000).unref());
    assert.equal(await Promise.race([inPage(e), timeout]), true, `${e.where}: ${e.arg || "threw"}`);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test("29. the Node example answers 401 without a token and 200 with one", async () => {
  const examples = of("node");
  assert.ok(examples.length >= 1);
  const dir = mkdtempSync(join(tmpdir(), "baton-docs-node-"));
  mkdirSync(join(dir, "node_modules"));
  cpSync(unpackedPackage(), join(dir, "node_modules/baton-auth"), { recursive: true });
  for (const dep of readdirSync(join(ROOT, "tests/node_modules"))) {
    symlinkSync(join(ROOT, "tests/node_modules", dep), join(dir, "node_modules", dep));
  }
  for (const e of examples) {
    // After the example: listen, call /orders without and with the token, stop.
    const check = `
const listener = app.listen(0, "127.0.0.1");
await new Promise((ok) => listener.once("listening", ok));
const at = \`http://127.0.0.1:\${listener.address().port}/orders\`;
const without = await fetch(at);
const withToken = await fetch(at, { headers: { Authorization: \`Bearer \${process.env.ACCESS_TOKEN}\` } });
console.log(JSON.stringify({ without: without.status, with: withToken.status, body: await withToken.json() }));
verifier.close();
listener.close();
`;
    writeFileSync(join(dir, "example.mjs"), filled(e.code) + check);
    const out = run("node", ["example.mjs"], { cwd: dir, env: { ...process.env, ACCESS_TOKEN: env.token, BATON_INTROSPECTION_TOKEN: SECRET } });
    assert.deepEqual(JSON.parse(out.trim().split("\n").pop()), { without: 401, with: 200, body: { user: env.sub } }, e.where);
  }
});

test("29. the Python example verifies a Baton access token", () => {
  const examples = of("python");
  assert.ok(examples.length >= 1);
  for (const e of examples) {
    const code = `import os\ntoken = os.environ["ACCESS_TOKEN"]\n${filled(e.code)}\nassert ${e.arg || "True"}, "${e.where}"\n`;
    run("/usr/bin/python3", ["-c", code], { env: { ...process.env, ACCESS_TOKEN: env.token } });
  }
});

test("29. the shell examples run", async () => {
  const examples = of("sh").filter((e) => e.arg !== "behind-nginx");
  assert.ok(examples.length >= 3);
  const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
  const work = mkdtempSync(join(tmpdir(), "baton-docs-sh-"));
  mkdirSync(join(env.dir, "etc"), { recursive: true });
  const shellEnv = {
    ...withoutCargo(process.env),
    PATH: `${dirname(bin)}:${process.env.PATH}`,
    ACCESS_TOKEN: env.token,
    ADMIN_TOKEN: env.adminToken,
    EMAIL: env.apiUser,
    BATON_INTROSPECTION_TOKEN: SECRET,
    BATON_DATABASE_URL: `sqlite://${join(work, "baton.db")}`,
    BATON_BIND: "127.0.0.1:0",
    BATON_KEY_ENCRYPTION_KEY_FILE: join(env.dir, "etc/kek"),
    BATON_LOG: "warn",
    // The clone builds into a target folder kept between runs.
    CARGO_TARGET_DIR: join(ROOT, "target/docs-example/target"),
  };
  const registry = await npmRegistry();
  try {
    for (const e of examples) {
      const code = filled(e.code, installPlaces(work));
      // Building the package from a clone takes a minute or two: once per commit and example.
      const stamp = join(ROOT, "target/docs-example", `ran-${createHash("sha256").update(head() + code).digest("hex").slice(0, 16)}`);
      if (code.includes("git clone") && existsSync(stamp)) {
        console.log(`# ${e.where}: ran on this commit already (${stamp})`);
        continue;
      }
      if (e.arg.startsWith("on-server")) {
        // The operator's commands on the machine of the running server, on its database (with
        // its settings: no key encryption key), about an account of their own.
        const email = uniqueEmail("docs-admin");
        assert.equal((await post("/auth/register", { email, password: PASSWORD })).status, 201);
        const { BATON_KEY_ENCRYPTION_KEY_FILE, ...serverEnv } = shellEnv;
        const out = await runAsync("bash", ["-euo", "pipefail", "-c", code], {
          cwd: work,
          env: { ...serverEnv, BATON_DATABASE_URL: env.server.databaseUrl, EMAIL: email },
          timeout: 60_000,
        });
        assert.match(out, new RegExp(e.arg.slice("on-server".length).trim()), e.where);
        continue;
      }
      if (e.arg === "serves") {
        // A server in the foreground: it must come up; then it is stopped.
        const child = spawn("bash", ["-euo", "pipefail", "-c", code], { cwd: work, env: shellEnv, detached: true, stdio: ["ignore", "pipe", "inherit"] });
        const line = await firstLine(child, e.where);
        assert.match(line, /^listening on http:\/\//, e.where);
        process.kill(-child.pid, "SIGTERM");
        await new Promise((ok) => child.once("exit", ok));
        continue;
      }
      const app = join(work, "app");
      mkdirSync(app, { recursive: true });
      writeFileSync(join(app, "package.json"), '{ "name": "app", "private": true }\n');
      // `npm install baton-auth` in an app, from the registry of one package; anything else in
      // the work folder, with npm's real registry (the clone's build installs its tools).
      const fromRegistry = e.code.trimStart().startsWith("npm install");
      // Not execFileSync: the registry answers from this process, whose loop must keep running.
      const out = await runAsync("bash", ["-euo", "pipefail", "-c", code], {
        cwd: fromRegistry ? app : work,
        env: { ...shellEnv, ...(fromRegistry ? registry.env : {}) },
        timeout: 900_000,
      });
      if (e.arg) assert.match(out, new RegExp(e.arg), e.where);
      if (code.includes("npm install")) {
        assert.equal(JSON.parse(readFileSync(join(app, "node_modules/baton-auth/package.json"), "utf8")).name, "baton-auth", e.where);
        rmSync(app, { recursive: true });
      }
      if (code.includes("git clone")) {
        mkdirSync(dirname(stamp), { recursive: true });
        writeFileSync(stamp, `${e.where}\n`);
      }
    }
  } finally {
    registry.close();
    // The clone, its build and the database: hundreds of MB per run otherwise left in /tmp.
    rmSync(work, { recursive: true, force: true });
  }
});

// A command's output, the event loop running meanwhile; an exit other than 0 throws with its
// stderr.
function runAsync(cmd, args, { timeout, ...options }) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => process.kill(-child.pid, "SIGKILL"), timeout);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      code === 0 ? ok(out) : fail(new Error(`${cmd} ${args.join(" ")}: ${signal ?? `exit ${code}`}\n${err}`));
    });
  });
}

// The environment without what cargo set for xtask (which runs these tests), as a shell has it.
function withoutCargo(vars) {
  return Object.fromEntries(Object.entries(vars).filter(([k]) => k === "CARGO_HOME" || !(k === "CARGO" || k.startsWith("CARGO_"))));
}

// Until a process prints its first line: that line.
function firstLine(child, where) {
  return new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once("line", ok);
    child.once("exit", (c) => fail(new Error(`${where} exited with ${c}`)));
  });
}

test("29. the nginx example proxies to Baton: the public issuer, and the client's real address", async () => {
  const [site] = of("nginx");
  const [start] = of("sh").filter((e) => e.arg === "behind-nginx");
  assert.ok(site && start, "the nginx example and the command that starts Baton behind it");
  const bin = process.env.BATON_SERVER_BIN || join(ROOT, "target/debug/baton-server");
  const dir = mkdtempSync(join(tmpdir(), "baton-docs-nginx-"));
  const [proxyPort, batonPort] = [await freePort(), await freePort()];
  const places = {
    "https://auth.example.com": `https://auth.example.com:${proxyPort}`,
    "listen 443 ssl": `listen 127.0.0.1:${proxyPort} ssl`,
    "127.0.0.1:8080": `127.0.0.1:${batonPort}`,
    "/etc/baton": join(dir, "etc"),
  };
  const fill = (code) => Object.entries(places).reduce((c, [from, to]) => c.split(from).join(to), code);
  mkdirSync(join(dir, "etc/tls"), { recursive: true });
  run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=auth.example.com",
    "-addext", "subjectAltName=DNS:auth.example.com", "-keyout", join(dir, "etc/tls/privkey.pem"), "-out", join(dir, "etc/tls/fullchain.pem")]);
  const baton = spawn("bash", ["-euo", "pipefail", "-c", fill(start.code)], {
    cwd: dir,
    detached: true,
    env: { ...withoutCargo(process.env), PATH: `${dirname(bin)}:${process.env.PATH}`, BATON_DATABASE_URL: `sqlite://${join(dir, "baton.db")}`, BATON_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log stderr warn;\nevents {}\n` +
      `http {\naccess_log off;\nclient_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;\n${fill(site.code)}}\n`,
  );
  const nginx = spawn("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "inherit", "inherit"] });
  try {
    assert.match(await firstLine(baton, start.where), /^listening on /);
    // A client on 127.0.0.2 calls https://auth.example.com:PORT, which is nginx on 127.0.0.1.
    const curl = async (path, ...args) => {
      for (let i = 0; ; i++) {
        try {
          return run("curl", ["-sS", "--fail-with-body", "--cacert", join(dir, "etc/tls/fullchain.pem"), "--resolve", `auth.example.com:${proxyPort}:127.0.0.1`,
            "--interface", "127.0.0.2", ...args, `https://auth.example.com:${proxyPort}${path}`]);
        } catch (e) {
          if (i > 50 || !/Connection refused|Couldn't connect/.test(String(e.stderr))) throw e;
          await new Promise((r) => setTimeout(r, 100)); // nginx is starting
        }
      }
    };
    const discovery = JSON.parse(await curl("/.well-known/openid-configuration"));
    assert.equal(discovery.issuer, `https://auth.example.com:${proxyPort}`);
    const email = uniqueEmail("nginx");
    const json = ["-H", "Content-Type: application/json", "-H", "X-Device-ID: docs-nginx-device", "-H", "X-Forwarded-For: 203.0.113.9"];
    await curl("/auth/register", ...json, "--data", JSON.stringify({ email, password: PASSWORD }));
    const login = JSON.parse(await curl("/auth/login", ...json, "--data", JSON.stringify({ email, password: PASSWORD })));
    const sessions = JSON.parse(await curl("/auth/sessions", "-H", `Authorization: Bearer ${login.access_token}`, "-H", "X-Device-ID: docs-nginx-device"));
    // Not nginx's address, and not the one the client claimed for itself.
    assert.deepEqual(sessions.sessions.map((s) => s.ip), ["127.0.0.2"]);
  } finally {
    nginx.kill("SIGQUIT");
    process.kill(-baton.pid, "SIGTERM");
  }
});

// Where the install example clones from and builds: this checkout, and a target folder kept
// between runs so a second run compiles little.
function installPlaces(work) {
  const source = join(work, "src/baton");
  if (!existsSync(source)) {
    mkdirSync(dirname(source), { recursive: true });
    symlinkSync(ROOT, source);
  }
  return {
    "https://github.com/baton-auth/baton": `file://${source}`,
    "/path/to/your/app": join(work, "app"),
    "/path/to/baton": join(work, "baton"),
  };
}

// `npm install baton-auth` before the package is on the registry: a registry of one package
// on loopback, serving the tarball `npm pack` made.
async function npmRegistry() {
  const tgz = readFileSync(packedTarball());
  const manifest = JSON.parse(readFileSync(join(unpackedPackage(), "package.json"), "utf8"));
  const server = createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    if (req.url === "/baton-auth") {
      const dist = {
        tarball: `${base}/baton-auth/-/baton-auth-${manifest.version}.tgz`,
        shasum: createHash("sha1").update(tgz).digest("hex"),
        integrity: `sha512-${createHash("sha512").update(tgz).digest("base64")}`,
      };
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ name: "baton-auth", "dist-tags": { latest: manifest.version }, versions: { [manifest.version]: { ...manifest, dist } } }));
    } else if (req.url.endsWith(".tgz")) {
      res.end(tgz);
    } else {
      res.statusCode = 404;
      res.end("{}");
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const cache = mkdtempSync(join(tmpdir(), "baton-npm-cache-"));
  return {
    env: {
      npm_config_registry: `http://127.0.0.1:${server.address().port}/`,
      npm_config_cache: cache,
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false",
    },
    close: () => server.close(),
  };
}

test("29. the xtask commands named in the docs exist, with the options named", () => {
  const xtask = join(ROOT, "target/debug/xtask");
  const usage = run(xtask, ["help"]);
  for (const e of of("xtask")) {
    let command;
    for (const line of e.code.split("\n")) {
      const m = /^cargo xtask ([\w-]+)/.exec(line);
      if (m) {
        command = m[1];
        assert.match(usage, new RegExp(`^  ${command} `, "m"), `${e.where}: no command ${command}`);
      }
      for (const option of line.split("#")[1]?.match(/--[\w-]+/g) ?? []) {
        assert.ok(command === "demo", `${e.where}: options are only checked for demo`);
        const help = run(xtask, ["demo", "--help"]); // fails if demo has no --help
        assert.ok(option === "--help" || help.includes(option), `${e.where}: demo has no ${option}`);
      }
    }
  }
});

test("29. the code tour names paths that exist", () => {
  for (const e of of("paths")) {
    for (const line of e.code.split("\n")) {
      const m = /^(\S+\/\S*|\S+\.\w+)\s/.exec(line);
      if (m) assert.ok(existsSync(join(ROOT, m[1])), `${e.where}: ${m[1]} does not exist`);
    }
  }
});

test("29. the event line has the shape of the lines a server writes", async () => {
  // A refused sign-in writes one.
  await post("/auth/login", { email: env.email, password: "wrong password, surely" });
  let line;
  for (let i = 0; i < 100 && !line; i++) {
    line = existsSync(env.events) && readFileSync(env.events, "utf8").split("\n").find((l) => l.includes('"login_failed"'));
    if (!line) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(line, "no login_failed event written");
  const shape = (v) =>
    v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])])) : v === null ? "null or value" : "value";
  const written = shape(JSON.parse(line));
  for (const e of of("event")) {
    const shown = shape(JSON.parse(e.code));
    assert.deepEqual(JSON.parse(JSON.stringify(shown).replaceAll('"null or value"', '"value"')), JSON.parse(JSON.stringify(written).replaceAll('"null or value"', '"value"')), e.where);
  }
});
