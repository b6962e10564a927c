/**
 * Summary statistics of a split: images per class and per-channel mean and std.
 *
 * @module
 */
import type { CifarSplit } from "./load.ts";
import { cifarSpec } from "./spec.ts";

/** Per-channel statistics of pixel values scaled to [0, 1]. */
export interface ChannelStats {
  /** Mean of R, G, B over every pixel of every image. */
  readonly mean: readonly [number, number, number];
  /** Population standard deviation of R, G, B over every pixel of every image. */
  readonly std: readonly [number, number, number];
}

/**
 * Counts the images of each class.
 *
 * @param split The split.
 * @returns One count per class name.
 * @example
 * ```ts
 * import { classCounts, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split = { count: 3, labels: new Uint8Array([0, 2, 2]), classNames: ["a", "b", "c"] };
 * assert.deepEqual([...classCounts(split as unknown as CifarSplit)], [1, 0, 2]);
 * ```
 */
export function classCounts(split: CifarSplit): Int32Array {
  const counts = new Int32Array(split.classNames.length);
  for (let i = 0; i < split.count; i++) counts[split.labels[i]]++;
  return counts;
}

/**
 * Computes the exact per-channel mean and (population) standard deviation of a split's pixels in
 * [0, 1], over all pixels of all images, the way the published CIFAR normalisation constants are
 * defined. Integer sums in float64 are exact for any CIFAR split.
 *
 * @param split The split (at least one image).
 * @returns Mean and std per channel.
 * @throws {RangeError} If the split is empty.
 * @example
 * ```ts
 * import { channelStats, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const images = new Uint8Array(3072);
 * for (let p = 0; p < 1024; p++) images[3 * p] = p % 2 ? 255 : 0; // red: half 0, half 255
 * const { mean, std } = channelStats({ count: 1, images } as CifarSplit);
 * assert.deepEqual(mean, [0.5, 0, 0]);
 * assert.deepEqual(std, [0.5, 0, 0]);
 * ```
 */
export function channelStats(split: CifarSplit): ChannelStats {
  if (split.count === 0) throw new RangeError("channelStats: the split has no images");
  const { images } = split;
  let s0 = 0, s1 = 0, s2 = 0, q0 = 0, q1 = 0, q2 = 0;
  // Per-image partial sums stay small integers; the totals stay below 2^53, so all sums are exact.
  for (let o = 0; o < images.length; o += 3072) {
    let a0 = 0, a1 = 0, a2 = 0, b0 = 0, b1 = 0, b2 = 0;
    for (let q = o; q < o + 3072; q += 3) {
      const r = images[q], g = images[q + 1], b = images[q + 2];
      a0 += r;
      a1 += g;
      a2 += b;
      b0 += r * r;
      b1 += g * g;
      b2 += b * b;
    }
    s0 += a0;
    s1 += a1;
    s2 += a2;
    q0 += b0;
    q1 += b1;
    q2 += b2;
  }
  const n = images.length / 3;
  const stat = (s: number, q: number): [number, number] => {
    const mean = s / n;
    const variance = Math.max(0, q / n - mean * mean);
    return [mean / 255, Math.sqrt(variance) / 255];
  };
  const [m0, d0] = stat(s0, q0), [m1, d1] = stat(s1, q1), [m2, d2] = stat(s2, q2);
  return { mean: [m0, m1, m2], std: [d0, d1, d2] };
}

/** What `deno task data check` reports about one split. */
export interface SplitSummary {
  /** Number of records. */
  readonly records: number;
  /** Records the official file(s) of this split hold. */
  readonly expectedRecords: number;
  /** Number of classes. */
  readonly classes: number;
  /** Fewest images of any class. */
  readonly perClassMin: number;
  /** Most images of any class. */
  readonly perClassMax: number;
  /** Per-channel statistics in [0, 1]. */
  readonly channels: ChannelStats;
  /** Every file read, with size and md5. */
  readonly files: CifarSplit["files"];
}

/**
 * Summarises a split: record count (and the official one), images per class (min/max),
 * per-channel mean and std, and the md5 of every file read.
 *
 * @param split The split.
 * @returns The summary.
 * @throws {RangeError} If the split is empty.
 * @example
 * ```ts
 * import { splitSummary, type CifarSplit } from "@mfi/data";
 * import assert from "node:assert/strict";
 * const split = {
 *   dataset: "cifar10", split: "test", count: 2, images: new Uint8Array(2 * 3072),
 *   labels: Uint8Array.of(0, 9), classNames: Array.from({ length: 10 }, String), files: [],
 * } as unknown as CifarSplit;
 * const s = splitSummary(split);
 * assert.deepEqual([s.records, s.expectedRecords, s.perClassMin, s.perClassMax], [2, 10000, 0, 1]);
 * ```
 */
export function splitSummary(split: CifarSplit): SplitSummary {
  const counts = classCounts(split);
  return {
    records: split.count,
    expectedRecords: cifarSpec(split.dataset).records[split.split],
    classes: counts.length,
    perClassMin: Math.min(...counts),
    perClassMax: Math.max(...counts),
    channels: channelStats(split),
    files: split.files,
  };
}
