// `deno doc --lint` over the public entry points: every export documented, no public signature
// naming a type the package does not export (tfjs types go through @mfi/core's aliases).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * Entry points checked together (one package's signatures may name another's exported types).
 * Every published package is here.
 */
const ENTRIES = [
  "core/mod.ts",
  "core/testing.ts",
  "data/mod.ts",
  "resnet/mod.ts",
  "flows/mod.ts",
  "incubation/mod.ts",
  "serve/mod.ts",
];

Deno.test("deno doc --lint is clean for the published entry points", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", ...ENTRIES],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  const errors = text.split("\n").filter((l) => /^error(\[|:)/.test(l));
  assert.deepEqual(errors, [], text.split("\n").filter((l) => !l.startsWith("Warning")).join("\n"));
  assert.equal(code, 0, text);
});
