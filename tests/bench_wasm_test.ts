/**
 * The WASM benchmark's rows, as its child processes measure them: `tasks/bench.ts --tiny --threads
 * 1 --only conv`, `--only resnet18` and `--only resnet50` (what `deno task bench` runs per
 * measurement) must report the forward, backward-input and backward-filter convolutions, 3x3 and
 * 1x1, on the library's default (our own kernels) and on XNNPACK, and each ResNet's
 * training step on both, each with a finite rate; and the profile on 2 threads must report the
 * own-kernel pool's synchronisations per step.
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

Deno.test("wasm bench: the conv measurement has rows for both kernel kinds and the 1x1 convolution", async () => {
  const rows = await child("conv");
  assert.deepEqual(rows.map((r) => r.name), [
    "conv3x3 forward",
    "conv3x3 backward-input",
    "conv3x3 backward-filter",
    "conv3x3 forward (XNNPACK)",
    "conv3x3 backward-input (XNNPACK)",
    "conv3x3 backward-filter (XNNPACK)",
    "conv1x1 forward",
    "conv1x1 backward-input",
    "conv1x1 backward-filter",
    "conv1x1 forward (XNNPACK)",
    "conv1x1 backward-input (XNNPACK)",
    "conv1x1 backward-filter (XNNPACK)",
  ]);
  for (const r of rows) {
    assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
    assert.equal(r.unit, "GFLOP/s");
  }
});

for (const arch of ["resnet18", "resnet50"]) {
  Deno.test(`wasm bench: ${arch} training is also measured on XNNPACK's convolutions`, async () => {
    const rows = await child(arch);
    assert.deepEqual(rows.map((r) => r.name), [
      `${arch} train (batch 2)`,
      `${arch} train (batch 2, XNNPACK convolutions)`,
      `${arch} inference (batch 2)`,
    ]);
    for (const r of rows) {
      assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
    }
  });
}

Deno.test("wasm bench: the profile on 2 threads reports the own-kernel pool's synchronisations per step", async () => {
  const run = await runDeno(["tasks/bench.ts", "--threads", "2", "--only", "profile", "--quick"]);
  assert.equal(run.code, 0, `bench --only profile failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  const { profile } = JSON.parse(line) as {
    profile: { pool?: { threads: number; calls: number; wakeups: number; waitMs: number } };
  };
  assert.ok(profile.pool !== undefined, "no pool counters");
  assert.equal(profile.pool.threads, 2);
  // ResNet-18: 20 forward and 19 backward-input convolutions (one pool call each), the
  // backward-filter passes, four batch-norm passes per layer and one optimizer step.
  assert.ok(
    profile.pool.calls >= 100 && profile.pool.calls <= 200,
    `${profile.pool.calls} pool calls per step`,
  );
  assert.ok(profile.pool.wakeups <= profile.pool.calls && profile.pool.waitMs >= 0);
});
