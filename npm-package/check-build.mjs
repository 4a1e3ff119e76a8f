// Runs before `npm pack` and `npm publish`: refuses to pack a package without its build.
import { existsSync, readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url)));
const missing = pkg.files.filter((f) => !existsSync(new URL(f, import.meta.url)));
if (missing.length > 0) {
  console.error(
    `baton-auth: the build is missing (${missing.join(", ")}).\n` +
      "Build it first from the repository root with: cargo xtask build-wasm",
  );
  process.exit(1);
}
