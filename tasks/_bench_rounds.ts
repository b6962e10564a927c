/**
 * `deno task bench --rounds N`: the same measurements repeated N times, thread counts alternating
 * within each round, so that a machine whose speed drifts (a shared host) affects every thread
 * count alike. Each row is reported as the median of its rounds with their range, and each model's
 * scaling (the most threads over one) per round, from measurements minutes apart at most.
 *
 * @module
 */

/** A measured row of one round (the fields the combination reads). */
export interface RoundRow {
  readonly name: string;
  readonly threads?: number;
  readonly unit: string;
  readonly value: number;
  readonly perCpu?: number;
  readonly gflops?: number;
  readonly heapMiB?: number;
  /** The row's rate as a percentage of the tile loop measured beside it (see tasks/bench.ts). */
  readonly tilePercent?: number;
}

/** A row over all rounds: medians, the largest peak heap, and every round's value. */
export type CombinedRow<T extends RoundRow> = T & {
  /** Each round's value, in round order. */
  readonly values: readonly number[];
  /** Smallest and largest value of the rounds. */
  readonly range: readonly [number, number];
};

/**
 * The median of `xs` (the mean of the middle two for an even count); undefined for none.
 *
 * @param xs The values, in any order.
 * @returns Their median.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./_bench_rounds.ts";
 * assert.equal(median([3, 1, 2]), 2);
 * assert.equal(median([4, 1, 3, 2]), 2.5);
 * ```
 */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Combines the rounds' rows (each round a list of rows, the same names and thread counts in the
 * same order) into one row per name and thread count, in the first round's order: `value`,
 * `perCpu`, `gflops` and `tilePercent` become the rounds' medians, `heapMiB` the largest.
 *
 * @param rounds The rows of each round.
 * @returns One row per name and thread count.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { combineRounds } from "./_bench_rounds.ts";
 * const row = (value: number) => ({ name: "resnet18 train", threads: 2, unit: "images/s", value });
 * const [r] = combineRounds([[row(300)], [row(340)], [row(320)]]);
 * assert.equal(r.value, 320);
 * assert.deepEqual(r.range, [300, 340]);
 * ```
 */
export function combineRounds<T extends RoundRow>(
  rounds: readonly (readonly T[])[],
): CombinedRow<T>[] {
  const key = (r: RoundRow) => `${r.name}\u0000${r.threads ?? ""}\u0000${r.unit}`;
  const groups = new Map<string, T[]>();
  for (const rows of rounds) {
    for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const values = rs.map((r) => r.value);
    const med = (pick: (r: T) => number | undefined) => {
      const xs = rs.map(pick).filter((x): x is number => x !== undefined);
      return median(xs);
    };
    const heaps = rs.map((r) => r.heapMiB).filter((x): x is number => x !== undefined);
    const perCpu = med((r) => r.perCpu);
    const gflops = med((r) => r.gflops);
    const tilePercent = med((r) => r.tilePercent);
    return {
      ...rs[0],
      value: median(values)!,
      ...(perCpu === undefined ? {} : { perCpu }),
      ...(gflops === undefined ? {} : { gflops }),
      ...(tilePercent === undefined ? {} : { tilePercent }),
      ...(heaps.length === 0 ? {} : { heapMiB: Math.max(...heaps) }),
      values,
      range: [Math.min(...values), Math.max(...values)] as const,
    };
  });
}

/** A model row's scaling from one thread count to another, per round. */
export interface RoundScaling {
  readonly name: string;
  readonly from: number;
  readonly to: number;
  /** `to`-thread value over `from`-thread value, per round. */
  readonly ratios: readonly number[];
}

/**
 * Per round, each images/s row's value on `to` threads over its value on `from` threads (rows
 * measured in the same round, minutes apart at most).
 *
 * @param rounds The rows of each round.
 * @param from The thread count of the denominator (1).
 * @param to The thread count of the numerator (the most).
 * @returns One entry per row name measured on both counts.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scalingByRound } from "./_bench_rounds.ts";
 * const row = (threads: number, value: number) =>
 *   ({ name: "resnet18 train", threads, unit: "images/s", value });
 * const [s] = scalingByRound([[row(1, 200), row(2, 360)], [row(1, 180), row(2, 342)]], 1, 2);
 * assert.deepEqual(s.ratios, [1.8, 1.9]);
 * ```
 */
export function scalingByRound(
  rounds: readonly (readonly RoundRow[])[],
  from: number,
  to: number,
): RoundScaling[] {
  if (from === to || rounds.length === 0) return [];
  const names = rounds[0].filter((r) => r.unit === "images/s" && r.threads === from)
    .map((r) => r.name);
  return names.flatMap((name) => {
    const ratios: number[] = [];
    for (const rows of rounds) {
      const a = rows.find((r) => r.name === name && r.threads === from);
      const b = rows.find((r) => r.name === name && r.threads === to);
      if (a !== undefined && b !== undefined && a.value > 0) ratios.push(b.value / a.value);
    }
    return ratios.length === 0 ? [] : [{ name, from, to, ratios }];
  });
}

/**
 * One model's two-thread scaling measured inside one process (`measureOwnKernelScaling` of
 * `@mfi/core`: the own kernels on the calling thread and on the pool, alternating), per
 * in-process round.
 */
export interface InProcessScaling {
  readonly name: string;
  /** Threads of the pool. */
  readonly threads: number;
  /** Milliseconds per step on the calling thread, per in-process round. */
  readonly oneThreadMs: readonly number[];
  /** Milliseconds per step on the pool, per in-process round. */
  readonly poolMs: readonly number[];
  /** `oneThreadMs / poolMs`, per in-process round. */
  readonly ratios: readonly number[];
}

/**
 * Joins the in-process scaling of every `--rounds` round: per model (in the first round's order),
 * the in-process rounds of all bench rounds one after another.
 *
 * @param rounds Each bench round's measurements.
 * @returns One entry per model.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinInProcessScaling } from "./_bench_rounds.ts";
 * const s = (ratio: number) =>
 *   [{ name: "resnet18", threads: 2, oneThreadMs: [ratio * 100], poolMs: [100], ratios: [ratio] }];
 * const [joined] = joinInProcessScaling([s(1.7), s(1.8)]);
 * assert.deepEqual(joined.ratios, [1.7, 1.8]);
 * assert.deepEqual(joined.poolMs, [100, 100]);
 * ```
 */
export function joinInProcessScaling(
  rounds: readonly (readonly InProcessScaling[])[],
): InProcessScaling[] {
  if (rounds.length === 0) return [];
  return rounds[0].map((first) => {
    const all = rounds.flatMap((r) => r.filter((s) => s.name === first.name));
    return {
      name: first.name,
      threads: first.threads,
      oneThreadMs: all.flatMap((s) => s.oneThreadMs),
      poolMs: all.flatMap((s) => s.poolMs),
      ratios: all.flatMap((s) => s.ratios),
    };
  });
}

/** 1x1 against 3x3 convolutions of one kind, measured alternating inside one process. */
export interface PointwiseComparison {
  /** The kind: "forward", "backward-input" or "backward-filter". */
  readonly name: string;
  /** Threads the kernels ran on. */
  readonly threads: number;
  /** The 1x1's GFLOP/s over the 3x3's, per in-process round (counted flops). */
  readonly ratios: readonly number[];
  /**
   * The share of the 3x3's counted flops that are padded taps (which the own kernels skip):
   * `ratio / (1 - paddedShare)` is the ratio per multiply-add run.
   */
  readonly paddedShare: number;
}

/**
 * Joins the 1x1 against 3x3 comparisons of every `--rounds` round: per kind (in the first round's
 * order), the in-process rounds of all bench rounds one after another.
 *
 * @param rounds Each bench round's comparisons.
 * @returns One entry per kind.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinPointwise } from "./_bench_rounds.ts";
 * const p = (ratio: number) => [{ name: "forward", threads: 1, ratios: [ratio], paddedShare: 0.08 }];
 * const [joined] = joinPointwise([p(0.9), p(1.1)]);
 * assert.deepEqual(joined.ratios, [0.9, 1.1]);
 * ```
 */
export function joinPointwise(
  rounds: readonly (readonly PointwiseComparison[])[],
): PointwiseComparison[] {
  if (rounds.length === 0) return [];
  return rounds[0].map((first) => ({
    ...first,
    ratios: rounds.flatMap((r) => r.filter((p) => p.name === first.name).flatMap((p) => p.ratios)),
  }));
}
