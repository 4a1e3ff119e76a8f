// The packed package outside a browser: importing it touches no browser global (SSR), and
// BatonError is recognised across two copies of the package (double bundling).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { packedTarball } from "./harness.mjs";

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
