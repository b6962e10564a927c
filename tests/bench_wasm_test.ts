/**
 * The WASM benchmark's rows, as its child processes measure them: `tasks/bench.ts --tiny --threads
 * 1 --only roof`, `--only conv`, `--only resnet18` and `--only resnet50` (what `deno task bench`
 * runs per measurement) must report the roof and the tile loop, the forward, backward-input and
 * backward-filter convolutions, 3x3 and 1x1, on the library's default (our own kernels) and on
 * XNNPACK, and each ResNet's training step on both, each with a finite rate (the own kernels'
 * and the own training step's also as a % of the tile loop measured in the same process); the
 * profile on 2 threads must report the own-kernel pool's synchronisations per step and the tile
 * loop's rate in the same process, and `--profile-model resnet50` a ResNet-50 step; `--rounds 2`
 * must report every row as the median of two rounds, with each model's scaling per round and its
 * scaling inside one process, and the 1x1 against 3x3 convolutions measured inside one process
 * (on the fewest threads, every bench round's in-process rounds joined); `--v8-flags` must reach
 * the measuring processes; and the table must have a `% of tile loop` column, filled for the own
 * kernels' and training steps' rows only, say what share of the conv rows' counted flops are
 * padded taps (which the own kernels skip), and give the 1x1 against 3x3 table.
 */
import assert from "node:assert/strict";
import { runDeno } from "./_run_deno.ts";

interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly gflops?: number;
  readonly tilePercent?: number;
}

/** Own-kernel rows carry a finite, positive % of the tile loop measured beside them; others none. */
function assertTilePercent(rows: readonly Row[], own: (name: string) => boolean): void {
  for (const r of rows) {
    if (own(r.name)) {
      assert.ok(
        r.tilePercent !== undefined && Number.isFinite(r.tilePercent) && r.tilePercent > 0,
        `${r.name}: % of tile loop ${r.tilePercent}`,
      );
    } else {
      assert.equal(r.tilePercent, undefined, `${r.name}: no % of tile loop`);
    }
  }
}

async function child(only: string, extra: string[] = []): Promise<Row[]> {
  const run = await runDeno([
    "tasks/bench.ts",
    "--tiny",
    "--threads",
    "1",
    "--only",
    only,
    ...extra,
  ]);
  assert.equal(run.code, 0, `bench --only ${only} failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  return (JSON.parse(line) as { rows: Row[] }).rows;
}

Deno.test("wasm bench: the roof measurement has the roof and the tile loop", async () => {
  const rows = await child("roof", ["--quick"]);
  assert.deepEqual(rows.map((r) => r.name.replace(/ \(f32x4[^)]*\)$/, "")), [
    "WASM SIMD roof",
    "WASM SIMD tile loop (8 loads per 12 multiply-adds)",
  ]);
  for (const r of rows) {
    assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: ${r.value}`);
    assert.equal(r.unit, "GFLOP/s");
  }
});

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
  assertTilePercent(rows, (name) => !name.includes("XNNPACK"));
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
    assertTilePercent(rows, (name) => name === `${arch} train (batch 2)`);
  });
}

Deno.test("wasm bench: the profile on 2 threads reports the own-kernel pool's synchronisations per step and the tile loop", async () => {
  const run = await runDeno(["tasks/bench.ts", "--threads", "2", "--only", "profile", "--quick"]);
  assert.equal(run.code, 0, `bench --only profile failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  const { profile } = JSON.parse(line) as {
    profile: {
      tileGflops?: number;
      pool?: { threads: number; calls: number; wakeups: number; waitMs: number };
    };
  };
  // The tile loop measured in the profiling process (the yardstick of its % of tile loop column).
  assert.ok(
    profile.tileGflops !== undefined && Number.isFinite(profile.tileGflops) &&
      profile.tileGflops > 0,
    `tile loop ${profile.tileGflops}`,
  );
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

Deno.test("wasm bench: --rounds 2 reports medians of both rounds and each model's scaling per round", async () => {
  const run = await runDeno([
    "tasks/bench.ts",
    "--tiny",
    "--threads",
    "1,2",
    "--rounds",
    "2",
    "--json",
  ]);
  assert.equal(run.code, 0, `bench --rounds 2 failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  const report = JSON.parse(line) as {
    rounds: number;
    rows: (Row & { threads: number; values: number[]; range: [number, number] })[];
    scaling: { name: string; from: number; to: number; ratios: number[] }[];
    inProcessScaling: {
      name: string;
      threads: number;
      oneThreadMs: number[];
      poolMs: number[];
      ratios: number[];
      ratio: number;
    }[];
    pointwise: {
      name: string;
      threads: number;
      ratios: number[];
      ratio: number;
      paddedShare: number;
      perMultiplyAdd: number;
    }[];
  };
  assert.equal(report.rounds, 2);
  const train = report.rows.filter((r) => r.name === "resnet18 train (batch 2)");
  assert.deepEqual(train.map((r) => r.threads), [1, 2], "one row per thread count");
  for (const r of report.rows) {
    assert.equal(r.values.length, 2, `${r.name}: ${r.values}`);
    const [lo, hi] = [Math.min(...r.values), Math.max(...r.values)];
    assert.deepEqual(r.range, [lo, hi]);
    assert.ok(Math.abs(r.value - (lo + hi) / 2) <= 1e-9 * hi, `${r.name}: median of two`);
  }
  const s = report.scaling.find((x) => x.name === "resnet18 train (batch 2)");
  assert.ok(s !== undefined && s.from === 1 && s.to === 2 && s.ratios.length === 2);
  for (let k = 0; k < 2; k++) {
    const ratio = train[1].values[k] / train[0].values[k];
    assert.ok(
      Math.abs(s.ratios[k] - ratio) <= 1e-9 * ratio,
      "round k's two-thread over one-thread",
    );
  }
  // The scaling inside one process: each bench round's child measured one in-process round
  // (--tiny) per model, on the pool of 2 threads.
  assert.deepEqual(report.inProcessScaling.map((x) => x.name), [
    "resnet18 train (batch 2)",
    "resnet50 train (batch 2)",
  ]);
  for (const x of report.inProcessScaling) {
    assert.equal(x.threads, 2);
    assert.equal(x.ratios.length, 2, `${x.name}: one in-process round per bench round`);
    x.ratios.forEach((r, k) => assert.ok(Math.abs(r - x.oneThreadMs[k] / x.poolMs[k]) <= 1e-9 * r));
    assert.ok(Math.abs(x.ratio - (x.ratios[0] + x.ratios[1]) / 2) <= 1e-9 * x.ratio);
  }
  // 1x1 against 3x3: one in-process round (--tiny) per kind and bench round, on 1 thread. The
  // tiny conv rows are 8 x 8: 1 - (22/24)^2 of a 3x3's counted flops are padded taps.
  assert.deepEqual(report.pointwise.map((p) => p.name), [
    "forward",
    "backward-input",
    "backward-filter",
  ]);
  for (const p of report.pointwise) {
    assert.equal(p.threads, 1, `${p.name}: on the fewest threads`);
    assert.equal(p.ratios.length, 2, `${p.name}: one in-process round per bench round`);
    assert.ok(p.ratios.every((r) => Number.isFinite(r) && r > 0), `${p.name}: ${p.ratios}`);
    assert.ok(Math.abs(p.ratio - (p.ratios[0] + p.ratios[1]) / 2) <= 1e-9 * p.ratio);
    assert.ok(Math.abs(p.paddedShare - (1 - (22 / 24) ** 2)) < 1e-12, `${p.paddedShare}`);
    const perMac = p.ratio / (1 - p.paddedShare);
    assert.ok(Math.abs(p.perMultiplyAdd - perMac) <= 1e-9 * perMac);
  }
});

Deno.test("wasm bench: --profile-model resnet50 profiles a ResNet-50 step", async () => {
  // The whole bench (the roof's process, then the profile's), as a user runs it.
  const run = await runDeno([
    "tasks/bench.ts",
    "--profile",
    "--profile-model",
    "resnet50",
    "--threads",
    "1",
    "--quick",
    "--json",
  ]);
  assert.equal(run.code, 0, `bench --profile failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  const { profiles } = JSON.parse(line) as {
    profiles: Record<string, { arch: string; batch: number; byConv: { name: string }[] }>;
  };
  const profile = profiles["1"];
  assert.ok(profile !== undefined, Object.keys(profiles).join(", "));
  assert.equal(profile.arch, "resnet50");
  assert.equal(profile.batch, 32);
  // The bottleneck's 1x1 layers (ResNet-18 has 1x1 convolutions only with stride 2).
  assert.ok(
    profile.byConv.some((r) => /^Conv2D 1x1 16->16 s1$/.test(r.name)),
    profile.byConv.map((r) => r.name).join(", "),
  );
});

Deno.test("wasm bench: --only scaling on one thread says that it needs two", async () => {
  const run = await runDeno(["tasks/bench.ts", "--tiny", "--threads", "1", "--only", "scaling"]);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /--only scaling needs the wasm backend and --threads 2 or more/);
});

Deno.test("wasm bench: --only pointwise off wasm says that it needs wasm", async () => {
  const run = await runDeno([
    "tasks/bench.ts",
    "--tiny",
    "--backend",
    "cpu",
    "--only",
    "pointwise",
  ]);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /--only pointwise needs the wasm backend/);
  assert.match(run.stderr, /run it with --backend wasm/);
});

Deno.test("wasm bench: --v8-flags reaches the measuring processes and the report names it", async () => {
  const args = ["tasks/bench.ts", "--tiny", "--threads", "1", "--json"];
  const run = await runDeno([...args, "--v8-flags=--no-wasm-bounds-checks"]);
  assert.equal(run.code, 0, `bench --v8-flags failed:\n${run.stderr.slice(-3000)}`);
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, run.stdout);
  const report = JSON.parse(line) as { v8Flags?: string; rows: Row[] };
  assert.equal(report.v8Flags, "--no-wasm-bounds-checks");
  assert.ok(report.rows.some((r) => r.name.startsWith("WASM SIMD tile loop")));
  // A flag V8 does not know stops the first child, so the flags do reach the children.
  const bad = await runDeno([...args, "--v8-flags=--not-a-v8-flag"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /V8 did not recognize flag '--not-a-v8-flag'/);
  assert.match(bad.stderr, /bench: bench roof \(1 threads\) failed \(exit 1\)/);
});

Deno.test("wasm bench: the table shows each own kernel's and training step's % of the tile loop and the padded taps' share", async () => {
  const run = await runDeno(["tasks/bench.ts", "--tiny", "--threads", "1"]);
  assert.equal(run.code, 0, `bench failed:\n${run.stderr.slice(-3000)}`);
  const lines = run.stdout.split("\n");
  const header = lines.find((l) => l.startsWith("| measurement |"));
  assert.ok(header, run.stdout);
  const columns = header.split("|").map((c) => c.trim());
  const at = columns.indexOf("% of tile loop");
  assert.equal(columns[at - 1], "% of roof", header);
  const cell = (name: string) => {
    const line = lines.find((l) => l.startsWith(`| ${name} |`));
    assert.ok(line, `no row ${name}`);
    return line.split("|").map((c) => c.trim())[at];
  };
  for (const name of ["conv3x3 forward", "conv1x1 backward-filter", "resnet50 train (batch 2)"]) {
    assert.match(cell(name), /^\d+(\.\d+)?$/, name);
  }
  for (const name of ["conv3x3 forward (XNNPACK)", "resnet18 inference (batch 2)"]) {
    assert.equal(cell(name), "", name);
  }
  assert.match(run.stdout, /% of tile loop =/);
  // The tiny conv rows are 8 x 8 with padding 1: 22 of 24 taps per dimension are in bounds, so
  // 1 - (22/24)^2 = 16.0 % of the counted flops are padded taps the own kernels skip.
  assert.match(run.stdout, /at\s+8 x 8 with padding 1 they are 16\.0 % of the conv3x3 rows/);
  // A model's last stage runs at 4 x 4: 10 of 12 taps per dimension in bounds, 30.6 % padded.
  assert.match(run.stdout, /16\.0 % at 8 x 8, 30\.6 % at 4 x 4\)/);
  // The 1x1 against 3x3 table: a row per kind, on one thread, with a ratio per counted flop and
  // per multiply-add run (the latter the former over 1 - 16.0 %).
  assert.match(run.stdout, /1x1 against 3x3 inside one process/);
  for (const kind of ["forward", "backward-input", "backward-filter"]) {
    const line = lines.find((l) => l.startsWith(`| ${kind} |`));
    assert.ok(line, `no 1x1 against 3x3 row for ${kind}`);
    const [, , threads, ratio, , perMac, rounds] = line.split("|").map((c) => c.trim());
    assert.equal(threads, "1");
    assert.equal(rounds, "1");
    const [r, m] = [ratio, perMac].map((v) => Number(v.replace(/x$/, "")));
    assert.ok(r > 0 && Math.abs(m - r / (1 - (1 - (22 / 24) ** 2))) <= 0.011 + 0.01 * m, line);
  }
});
