/**
 * The WASM benchmark's own-kernel rows, as its child processes measure them: `tasks/bench.ts
 * --tiny --threads 1 --only conv` and `--only resnet18` (what `deno task bench` runs per
 * measurement) must report our own forward, backward-input and backward-filter kernels, the 1x1
 * convolution on XNNPACK and on our own kernel, and a ResNet-18 training step on all own conv
 * kernels, each with a finite rate.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";

interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

async function child(only: string): Promise<Row[]> {
  const run = await runDeno(["tasks/bench.ts", "--tiny", "--threads", "1", "--only", only]);
  assert.equal(run.code, 0, `bench --only ${only} failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  return (JSON.parse(line) as { rows: Row[] }).rows;
}

Deno.test("wasm bench: the conv measurement has rows for the own kernels and the 1x1 convolution", async () => {
  const rows = await child("conv");
  assert.deepEqual(rows.map((r) => r.name), [
    "conv3x3 forward",
    "conv3x3 backward-input",
    "conv3x3 backward-filter",
    "conv3x3 forward (own kernel)",
    "conv3x3 backward-input (own kernel)",
    "conv3x3 backward-filter (own kernel)",
    "conv1x1 forward",
    "conv1x1 forward (own kernel)",
  ]);
  for (const r of rows) {
    assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
    assert.equal(r.unit, "GFLOP/s");
  }
});

Deno.test("wasm bench: ResNet-18 training is also measured on all own conv kernels", async () => {
  const rows = await child("resnet18");
  assert.deepEqual(rows.map((r) => r.name), [
    "resnet18 train (batch 2)",
    "resnet18 train (batch 2, own backward-filter kernel)",
    "resnet18 train (batch 2, own conv kernels)",
    "resnet18 inference (batch 2)",
  ]);
  for (const r of rows) assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
});
