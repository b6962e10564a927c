/**
 * No synchronous tensor reads in library code: `dataSync`, `arraySync` and `bufferSync` block
 * until the device finishes (a stall on WebGPU, and a crash in Deno's WebGPU for `dataSync`).
 * Library code (the packages) reads with `await t.data()` or keeps tensors on the device. Doc
 * examples (comments), tests, test data and benchmarks are not library code. A use that must stay
 * goes in {@linkcode ALLOWED} with its reason; an entry that no longer matches fails too.
 */
import assert from "node:assert/strict";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { PACKAGES, stripComments } from "./_import_graph.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Files allowed to read synchronously, each with its reason. */
const ALLOWED: ReadonlyMap<string, string> = new Map<string, string>([
  // (empty: every library read is awaited; add `["path/file.ts", "why"]` only with a reason)
]);

const SYNC_READ = /\.\s*(dataSync|arraySync|bufferSync)\s*(<[^>()]*>)?\s*\(/g;

/** Whether a file is library code of a package (not a test, test data or a benchmark). */
function isLibrary(file: string): boolean {
  return file.endsWith(".ts") && !file.endsWith("_test.ts") && !file.endsWith("_bench.ts") &&
    !file.split("/").includes("testdata");
}

/**
 * The synchronous reads in one source file, comments excluded.
 *
 * @param source TypeScript source.
 * @returns `line: method` for each read.
 */
function syncReads(source: string): string[] {
  const code = stripComments(source);
  const found: string[] = [];
  for (const m of code.matchAll(SYNC_READ)) {
    const line = code.slice(0, m.index).split("\n").length;
    found.push(`${line}: ${m[1]}`);
  }
  return found;
}

async function libraryFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      const rel = relative(ROOT, path).split(sep).join("/");
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && isLibrary(rel)) files.set(rel, await Deno.readTextFile(path));
    }
  };
  for (const pkg of PACKAGES) {
    const dir = join(ROOT, pkg);
    if (await Deno.stat(dir).then((s) => s.isDirectory, () => false)) await walk(dir);
  }
  return files;
}

Deno.test("no synchronous tensor reads in library code outside the allow-list", async () => {
  const files = await libraryFiles();
  assert.ok(files.size > 80, `found only ${files.size} library files`);
  for (const pkg of ["core", "data", "resnet", "flows", "incubation"]) {
    assert.ok([...files.keys()].some((f) => f.startsWith(`${pkg}/`)), `no files in ${pkg}/`);
  }
  const offenders: string[] = [];
  for (const [file, source] of files) {
    const reads = syncReads(source);
    if (reads.length > 0 && !ALLOWED.has(file)) {
      offenders.push(...reads.map((r) => `${file}:${r}`));
    }
  }
  assert.deepEqual(
    offenders,
    [],
    `synchronous reads in library code (use \`await t.data()\`, or add the file to ALLOWED in ` +
      `tests/no_sync_reads_test.ts with a reason):\n${offenders.join("\n")}`,
  );
  for (const [file, reason] of ALLOWED) {
    assert.ok(reason.trim().length > 10, `${file}: the allow-list entry needs a reason`);
    assert.ok(files.has(file), `${file} is allow-listed but is not library code (remove it)`);
    assert.ok(syncReads(files.get(file)!).length > 0, `${file} no longer reads synchronously`);
  }
});

Deno.test("the sync-read check finds calls in code, not in comments or doc examples", () => {
  assert.deepEqual(syncReads("const a = t.dataSync();\nconst b = u.arraySync<number[]>();"), [
    "1: dataSync",
    "2: arraySync",
  ]);
  assert.deepEqual(syncReads("x\n  .bufferSync ()"), ["2: bufferSync"]);
  assert.deepEqual(
    syncReads(
      "/**\n * assert.ok(y.dataSync()[0] > 0);\n */\n// t.arraySync()\nconst d = await t.data();",
    ),
    [],
  );
  // A mention that is not a call (e.g. in an error message) is not a read.
  assert.deepEqual(syncReads('throw new Error("dataSync crashes on WebGPU");'), []);
  assert.equal(isLibrary("flows/toy.ts"), true);
  for (const f of ["flows/toy_test.ts", "core/testdata/backend_conv.ts", "core/backend_bench.ts"]) {
    assert.equal(isLibrary(f), false, f);
  }
});
