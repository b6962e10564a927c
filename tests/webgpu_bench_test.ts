/**
 * The benchmark table on WebGPU, as a user runs it: `deno task bench --backend webgpu
 * --allow-software-adapter --tiny` (here `deno run -A tasks/bench.ts ...`, the task's command) in
 * a subprocess. It must print the same rows as on WASM (the three conv kernels, 3x3 and 1x1,
 * ResNet-18/50 x0.25 training and inference images/s), each with a finite rate, the WebGPU
 * backend on the table's first line, and, on a software adapter, that the numbers mean nothing.
 *
 * Sized down: the standard shapes take hours on Mesa's llvmpipe on a loaded 2-core machine, so
 * the test runs `--tiny` (the same rows at batch 2, one timed repetition), which exercises every
 * measurement's code path on WebGPU.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";
import { webgpuTest } from "./_webgpu.ts";

/** The rows of the table at the `--tiny` shapes, in order. */
const ROWS = [
  "conv3x3 forward",
  "conv3x3 backward-input",
  "conv3x3 backward-filter",
  "conv1x1 forward",
  "conv1x1 backward-input",
  "conv1x1 backward-filter",
  "resnet18 train (batch 2)",
  "resnet18 inference (batch 2)",
  "resnet50 train (batch 2)",
  "resnet50 inference (batch 2)",
];

const bench = (args: string[]) => runDeno(["tasks/bench.ts", ...args]);

webgpuTest(
  "webgpu bench: bench --backend webgpu --allow-software-adapter --tiny prints the WASM table's rows",
  async () => {
    const run = await bench(["--backend", "webgpu", "--allow-software-adapter", "--tiny"]);
    assert.equal(
      run.code,
      0,
      `bench failed:\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`,
    );
    const lines = run.stdout.split("\n");
    const rows = lines.filter((l) => /^\| (conv3x3|conv1x1|resnet)/.test(l)).map((l) =>
      l.split("|")
    );
    assert.deepEqual(rows.map((r) => r[1].trim()), ROWS, run.stdout);
    for (const r of rows) {
      const [wall, unit] = [Number(r[3]), r[5].trim()];
      assert.ok(Number.isFinite(wall) && wall > 0, `${r[1].trim()}: rate ${r[3]}`);
      assert.equal(unit, r[1].trim().startsWith("conv") ? "GFLOP/s" : "images/s");
    }
    assert.match(run.stdout, /^Backend: webgpu \(/m);
    assert.match(run.stdout, /\*\*TINY shapes \(--tiny/);
    // On a software adapter (all CI has), the table and stderr say that the numbers mean nothing.
    if (/software adapter/.test(run.stdout)) {
      assert.match(run.stdout, /^Backend: webgpu \(software adapter: /m);
      const notes = run.stdout.match(
        /\*\*SOFTWARE ADAPTER \(--allow-software-adapter\): these numbers mean nothing/g,
      );
      assert.equal(notes?.length, 2, "the note opens and closes the table");
      assert.match(run.stderr, /WARNING: WebGPU runs on a SOFTWARE adapter/);
      assert.match(run.stderr, /bench: SOFTWARE ADAPTER .*these numbers mean nothing/);
    }
  },
);

Deno.test("bench: --allow-software-adapter without --backend webgpu is a usage error naming the fix", async () => {
  const run = await bench(["--allow-software-adapter", "--tiny"]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  assert.equal(
    run.stderr.trim(),
    "bench: --allow-software-adapter only applies with --backend webgpu (the backend is wasm); " +
      "add --backend webgpu to test WebGPU on a software adapter, or drop it",
  );
  assert.equal(run.stdout, "");
});
