// The packed package outside a browser: importing it touches no browser global (SSR), and
// BatonError is recognised across two copies of the package (double bundling).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT, packedTarball, unpackedPackage } from "./harness.mjs";

function copy() {
  const dir = mkdtempSync(join(tmpdir(), "baton-copy-"));
  execFileSync("tar", ["-xzf", packedTarball(), "-C", dir]);
  return pathToFileURL(join(dir, "package/dist/index.js")).href;
}

test("importing baton-auth in Node (no window, no document) works and exports the API", async () => {
  assert.equal(typeof globalThis.window, "undefined");
  const m = await import(copy());
  assert.equal(typeof m.Baton, "function");
  assert.equal(typeof m.Baton.create, "function");
  assert.equal(typeof m.isBatonError, "function");
  assert.equal(m.default, m.Baton);
  assert.throws(() => new m.Baton(), TypeError, "the constructor is private to create()");
});

test("isBatonError recognises errors from another copy of the package", async () => {
  const a = await import(copy());
  const b = await import(copy());
  assert.notEqual(a.BatonError, b.BatonError, "two distinct copies");
  const e = new a.BatonError("rate_limited", "slow down", 429, true, 3);
  assert.ok(b.isBatonError(e));
  assert.ok(!(e instanceof b.BatonError), "instanceof alone would fail here");
  assert.deepEqual([e.code, e.status, e.retryable, e.retryAfter, e.name], ["rate_limited", 429, true, 3, "BatonError"]);
  for (const other of [new Error("x"), { code: "rate_limited" }, null, undefined, "rate_limited"]) {
    assert.ok(!b.isBatonError(other));
  }
});

test("npm pack refuses to pack the package without its build", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-unbuilt-"));
  for (const f of ["package.json", "check-build.mjs", "index.js", "index.d.ts", "react.js", "react.d.ts", "README.md"]) {
    copyFileSync(join(ROOT, "npm-package", f), join(dir, f));
  }
  const r = spawnSync("npm", ["pack", "--pack-destination", dir], { cwd: dir, encoding: "utf8" });
  assert.notEqual(r.status, 0, "npm pack succeeded without dist/");
  assert.match(r.stderr, /cargo xtask build-wasm/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tgz")), []);
});

test("the package's metadata and README work on the registry page", () => {
  const pkg = JSON.parse(readFileSync(join(unpackedPackage(), "package.json"), "utf8"));
  assert.match(pkg.repository.url, /^git\+https:\/\//);
  assert.match(pkg.homepage, /^https:\/\//);
  assert.equal(pkg.peerDependenciesMeta.react.optional, true);
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  for (const f of ["LICENSE-MIT", "LICENSE-APACHE"]) {
    assert.match(readFileSync(join(unpackedPackage(), f), "utf8"), /Permission is hereby granted|Apache License/, f);
  }
  const readme = readFileSync(join(unpackedPackage(), "README.md"), "utf8");
  const links = [...readme.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]);
  assert.ok(links.length > 0);
  for (const link of links) assert.match(link, /^(https:\/\/|#)/, `a link that breaks on the registry: ${link}`);
});

test("a strict TypeScript app type-checks against every entry point", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-ts-"));
  const modules = join(dir, "node_modules");
  mkdirSync(join(modules, "baton-auth"), { recursive: true });
  execFileSync("tar", ["-xzf", packedTarball(), "-C", join(modules, "baton-auth"), "--strip-components=1"]);
  mkdirSync(join(modules, "@types"));
  symlinkSync(join(ROOT, "tests/node_modules/@types/react"), join(modules, "@types/react"), "dir");
  symlinkSync(join(ROOT, "tests/node_modules/react"), join(modules, "react"), "dir");
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext", moduleResolution: "bundler", lib: ["es2022", "dom"], types: [] },
      files: ["app.ts"],
    }),
  );
  writeFileSync(
    join(dir, "app.ts"),
    `import { Baton, BatonError, isBatonError, type Session } from "baton-auth";
import { BatonProvider, useBaton, useSession } from "baton-auth/react";
import { createElement } from "react";
import { createVerifier, createBatonServer, VerifyError, type AccessClaims, type ServerSession } from "baton-auth/server";
import { batonMiddleware, getSession } from "baton-auth/next";
import "baton-auth/account";
import "baton-auth/mfa";
import "baton-auth/passkeys";
import "baton-auth/oauth";
import type { Account } from "baton-auth/account";
import type { Passkey } from "baton-auth/passkeys";
import type { Identity, IdentityProvider } from "baton-auth/oauth";

export async function api(request: Request): Promise<string> {
  const verifier = createVerifier({ issuer: "https://auth.example.com", introspectionSecret: "s".repeat(32) });
  try {
    const claims: AccessClaims = await verifier.verifyRequest(request);
    return claims.sub;
  } catch (e) {
    if (e instanceof VerifyError) { const status: number = e.status; return \`\${status} \${e.code}\`; }
    throw e;
  } finally {
    verifier.close();
  }
}

export async function render(request: Request): Promise<Response> {
  const auth = createBatonServer({ baseUrl: "http://127.0.0.1:8080", introspectionSecret: "s".repeat(32) });
  const proxied: Response | null = await auth.proxy(request, { clientIp: "203.0.113.9" });
  if (proxied) return proxied;
  const { session, headers } = await auth.session(request);
  const s: ServerSession | null = session ?? (await getSession());
  const middleware: (r: Request) => Promise<Response> = batonMiddleware({ refreshMargin: 10 });
  void middleware;
  // @ts-expect-error baseUrl is required
  createBatonServer({});
  return new Response(s ? s.user.id : "signed out", { headers });
}

export async function main(): Promise<string | null> {
  const baton: Baton = await Baton.create({ baseUrl: "https://auth.example.com", storage: "local" });
  const result = await baton.login("a@example.com", "pw", { rememberMe: false });
  // An account with a second factor: the sign-in waits for it.
  const session: Session = "mfaRequired" in result ? await baton.verifyMfa({ totp: "123456" }) : result;
  const roles: string[] = session.roles;
  void roles;
  await baton.changePassword("old password", "new password");
  const account: Account = await baton.getUser();
  const meta: Record<string, unknown> = account.user_metadata;
  void meta;
  const enrolled = await baton.enrollTotp();
  const codes: string[] = await baton.confirmTotp("123456", enrolled.factorId);
  void codes;
  // @ts-expect-error a second factor is { totp }, { recoveryCode } or { passkey }
  await baton.verifyMfa({ code: "123456" });
  if (Baton.passkeysSupported()) {
    const added: Passkey = await baton.registerPasskey({ name: "Laptop" });
    const list: Passkey[] = await baton.listPasskeys();
    void list;
    await baton.renamePasskey(added.id, "Work laptop");
    const bySkey: Session = await baton.signInWithPasskey({ rememberMe: true, autofill: true });
    void bySkey;
    await baton.stepUp(await baton.passkeyFactor());
    await baton.removePasskey(added.id);
    // @ts-expect-error the name is a string
    await baton.registerPasskey({ name: 1 });
  }
  const providers: IdentityProvider[] = await baton.identityProviders();
  if (providers.length) baton.signInWith(providers[0].name, { redirectTo: "https://app.example.com/back" });
  const back = await baton.handleRedirect({ rememberMe: true });
  if (back && "mfaRequired" in back) await baton.verifyMfa({ totp: "123456" });
  else if (back && "linked" in back) { const linked: string = back.linked; void linked; }
  const ids: Identity[] = await baton.listIdentities();
  await baton.linkIdentity("github");
  if (ids.length > 1) await baton.unlinkIdentity(ids[0].provider);
  // @ts-expect-error signInWith navigates: it returns nothing to await
  const nothing: Promise<void> = baton.signInWith("github");
  void nothing;
  const off: () => void = baton.on("change", (d) => void d.session?.email);
  off();
  try {
    await baton.fetch("/api/x");
  } catch (e) {
    if (isBatonError(e)) { const code: string = e.code; void code; }
  }
  void (new Error() instanceof BatonError);
  // @ts-expect-error storage must be one of the documented values
  await Baton.create({ baseUrl: "https://auth.example.com", storage: "disk" });
  return session.email;
}

export function Who(): string | null {
  const s: Session | null = useSession();
  const b: Baton = useBaton();
  void b;
  return s ? s.email : null;
}

export const tree = createElement(BatonProvider, { options: { baseUrl: "https://auth.example.com" }, fallback: "…" });
// @ts-expect-error the provider needs a Baton, not a string
export const wrong = createElement(BatonProvider, { client: "nope" });
`,
  );
  const r = spawnSync(join(ROOT, "tests/node_modules/.bin/tsc"), ["-p", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
