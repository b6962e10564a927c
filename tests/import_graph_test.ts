import assert from "node:assert/strict";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkImportGraph,
  formatViolations,
  importSpecifiers,
  stripComments,
  targetOf,
} from "./_import_graph.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SKIP = new Set(["node_modules", ".git", "out", "runs", ".cache", "docs"]);

async function sources(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) {
        if (!SKIP.has(entry.name)) await walk(path);
      } else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(relative(ROOT, path).split(sep).join("/"), await Deno.readTextFile(path));
      }
    }
  };
  await walk(ROOT);
  return files;
}

Deno.test("import graph: no forbidden arrow between packages, tasks and tests", async () => {
  const files = await sources();
  assert.ok(files.size > 100, `found only ${files.size} .ts files under ${ROOT}`);
  for (const pkg of ["core", "data", "resnet", "flows", "incubation", "tasks", "tests"]) {
    assert.ok([...files.keys()].some((f) => f.startsWith(`${pkg}/`)), `no files in ${pkg}/`);
  }
  const violations = checkImportGraph(files);
  assert.equal(violations.length, 0, `forbidden imports:\n${formatViolations(violations)}`);
});

Deno.test("import graph: the checker names the file and the arrow of each forbidden import", () => {
  const graph = new Map<string, string>([
    [
      "core/a.ts",
      'import { buildResNet } from "@mfi/resnet";\nimport * as tf from "@tensorflow/tfjs-core";',
    ],
    ["core/b.ts", 'export { x } from "../data/x.ts";\nimport "./c.ts";'],
    [
      "resnet/r.ts",
      'import type { Phase } from "@mfi/incubation";\nimport { Rng } from "@mfi/core";',
    ],
    ["flows/f.ts", 'const m = await import("@mfi/resnet");'],
    ["data/d.ts", 'import { x } from "../tasks/data.ts";'],
    ["incubation/i.ts", 'import { serve } from "@mfi/serve";\nimport { a } from "@mfi/flows";'],
    ["incubation/j.ts", 'import { load } from "../resnet/state_dict.ts";'],
    [
      "serve/s.ts",
      'import { x } from "@mfi/incubation";\nimport { y } from "../tests/_smoke_run.ts";',
    ],
    ["tasks/t.ts", 'import { x } from "@mfi/serve";\nimport { h } from "../tests/helper.ts";'],
    ["tests/u.ts", 'import { x } from "../tasks/train.ts";\nimport { y } from "@mfi/serve";'],
    [
      "core/doc.ts",
      '/**\n * ```ts\n * import { buildResNet } from "@mfi/resnet";\n * ```\n */\n// import "@mfi/data";',
    ],
    ["resnet/ok.ts", 'const s = "import x from \\"@mfi/flows\\"";'],
  ]);
  const report = formatViolations(checkImportGraph(graph)).split("\n");
  assert.deepEqual(report, [
    'core/a.ts: core -> resnet ("@mfi/resnet"): core may import no other package',
    'core/b.ts: core -> data ("../data/x.ts"): core may import no other package',
    'resnet/r.ts: resnet -> incubation ("@mfi/incubation"): resnet may import only @mfi/core among the packages',
    'flows/f.ts: flows -> resnet ("@mfi/resnet"): flows may import only @mfi/core among the packages',
    'data/d.ts: data -> tasks ("../tasks/data.ts"): a package may not import tasks/ (entry points and tests depend on packages, not the reverse)',
    'incubation/i.ts: incubation -> serve ("@mfi/serve"): incubation may not import serve (serving depends on the method, not the reverse)',
    'incubation/j.ts: incubation -> resnet ("../resnet/state_dict.ts"): a package reaches another package through its @mfi/ name, not a relative path',
    'serve/s.ts: serve -> tests ("../tests/_smoke_run.ts"): a package may not import tests/ (entry points and tests depend on packages, not the reverse)',
    'tasks/t.ts: tasks -> tests ("../tests/helper.ts"): tasks/ may not import tests/',
  ]);
});

Deno.test("import graph: parsing keeps strings, skips comments and finds every import form", () => {
  const source = [
    'import * as tf from "@tensorflow/tfjs-core";',
    "import type { A, B } from '@mfi/core';",
    "import {",
    "  c,",
    "  type D,",
    '} from "./d.ts";',
    'export * from "./e.ts";',
    'export type { F } from "./f.ts";',
    'import "./side_effect.ts";',
    'const g = await import("./g.ts");',
    'const url = "https://example.com"; // import "./comment.ts"',
    '/* import "./block.ts" */ const s = "import x from \'./string.ts\'";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(source), [
    "@tensorflow/tfjs-core",
    "@mfi/core",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./side_effect.ts",
    "./g.ts",
  ]);
  assert.equal(stripComments('a // b\n"//c" /* d\ne */ f'), 'a     \n"//c"     \n     f');
  assert.equal(targetOf("core/kernels/x.ts", "../y.ts"), "core");
  assert.equal(targetOf("core/kernels/x.ts", "../../data/y.ts"), "data");
  assert.equal(targetOf("tasks/x.ts", "../../outside.ts"), "..");
  assert.equal(targetOf("tests/x.ts", "@mfi/core/testing"), "core");
  assert.equal(targetOf("tests/x.ts", "npm:fast-png"), null);
  assert.equal(targetOf("tests/x.ts", "node:path"), null);
});
