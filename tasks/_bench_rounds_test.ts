import assert from "node:assert/strict";
import {
  combineRounds,
  joinInProcessScaling,
  joinPointwise,
  median,
  scalingByRound,
} from "./_bench_rounds.ts";

Deno.test("median: odd and even counts, and none", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), undefined);
});

Deno.test("combineRounds: medians per name and thread count, the largest heap, every value in round order", () => {
  const round = (k: number) => [
    {
      name: "conv",
      threads: 1,
      unit: "GFLOP/s",
      value: 50 + k,
      gflops: 50 + k,
      perCpu: 51 + k,
      tilePercent: 90 - k,
    },
    { name: "conv", threads: 2, unit: "GFLOP/s", value: 90 + 2 * k, gflops: 90 + 2 * k },
    { name: "train", threads: 1, unit: "images/s", value: 200 - k, heapMiB: 200 + k },
  ];
  const rows = combineRounds([round(0), round(4), round(1)]);
  assert.deepEqual(rows.map((r) => [r.name, r.threads]), [["conv", 1], ["conv", 2], ["train", 1]]);
  assert.equal(rows[0].value, 51);
  assert.equal(rows[0].gflops, 51);
  assert.equal(rows[0].perCpu, 52);
  assert.equal(rows[0].tilePercent, 89);
  assert.deepEqual(rows[0].values, [50, 54, 51]);
  assert.deepEqual(rows[0].range, [50, 54]);
  assert.equal(rows[1].perCpu, undefined, "no per-CPU figure where no round had one");
  assert.equal(rows[1].tilePercent, undefined);
  assert.equal(rows[1].value, 92);
  assert.equal(rows[2].value, 199);
  assert.equal(rows[2].heapMiB, 204, "the largest peak heap of the rounds");
});

Deno.test("scalingByRound: images/s rows on both thread counts, round by round", () => {
  const round = (one: number, two: number) => [
    { name: "conv", threads: 1, unit: "GFLOP/s", value: 50 },
    { name: "conv", threads: 2, unit: "GFLOP/s", value: 100 },
    { name: "train", threads: 1, unit: "images/s", value: one },
    { name: "train", threads: 2, unit: "images/s", value: two },
    { name: "only one", threads: 1, unit: "images/s", value: 10 },
  ];
  assert.deepEqual(scalingByRound([round(100, 170), round(100, 180)], 1, 2), [
    { name: "train", from: 1, to: 2, ratios: [1.7, 1.8] },
  ]);
  assert.deepEqual(scalingByRound([round(100, 170)], 1, 1), [], "one thread count: nothing");
  assert.deepEqual(scalingByRound([], 1, 2), []);
});

Deno.test("joinInProcessScaling: per model, the bench rounds' in-process rounds in order", () => {
  const round = (k: number) => [
    { name: "resnet18", threads: 2, oneThreadMs: [300 + k], poolMs: [170, 171], ratios: [1.7 + k] },
    { name: "resnet50", threads: 2, oneThreadMs: [500], poolMs: [300], ratios: [1.6 + k] },
  ];
  const joined = joinInProcessScaling([round(0), round(0.1)]);
  assert.deepEqual(joined.map((s) => s.name), ["resnet18", "resnet50"]);
  assert.deepEqual(joined[0].oneThreadMs, [300, 300.1]);
  assert.deepEqual(joined[0].poolMs, [170, 171, 170, 171]);
  assert.deepEqual(joined[1].ratios, [1.6, 1.7000000000000002]);
  assert.deepEqual(joinInProcessScaling([]), []);
});

Deno.test("joinPointwise: per kind, the bench rounds' in-process rounds in order", () => {
  const round = (k: number) => [
    { name: "forward", threads: 1, ratios: [1 + k, 1.1 + k], paddedShare: 0.082 },
    { name: "backward-filter", threads: 1, ratios: [0.8 + k], paddedShare: 0.082 },
  ];
  const joined = joinPointwise([round(0), round(1)]);
  assert.deepEqual(joined.map((p) => p.name), ["forward", "backward-filter"]);
  assert.deepEqual(joined[0].ratios, [1, 1.1, 2, 2.1]);
  assert.deepEqual(joined[1].ratios, [0.8, 1.8]);
  assert.equal(joined[1].paddedShare, 0.082);
  assert.deepEqual(joinPointwise([]), []);
});
