/**
 * The MeanFlow (r, t) sampler: two logit-normal draws sorted so that r <= t, then all but a
 * fraction of the pairs set to r = t (plain flow matching), optionally mapped onto a
 * sub-interval of [0, 1].
 *
 * @module
 */
import type { Rng } from "@mfi/core";

/** Options of {@linkcode sampleTimes}. */
export interface TimeSamplerOptions {
  /** Mean of the logit-normal's underlying normal (default -0.4). */
  readonly mean?: number;
  /** Standard deviation of the underlying normal (default 1.0). */
  readonly std?: number;
  /** Fraction of pairs that keep r != t (default 0.25); the rest get r = t. 0 = flow matching. */
  readonly distinctFraction?: number;
  /** Interval [lo, hi] the draws are mapped onto affinely (default [0, 1]). */
  readonly interval?: readonly [number, number];
}

/** Sampled interval ends, one pair per sample. */
export interface TimeSample {
  /** Interval starts, r <= t. */
  readonly r: Float32Array;
  /** Interval ends. */
  readonly t: Float32Array;
}

const KEYS = new Set(["mean", "std", "distinctFraction", "interval"]);

/**
 * Draws `n` pairs (r, t): t and r from logit-normal(mean, std), sorted so r <= t; exactly
 * `round(distinctFraction * n)` pairs, at random positions, keep r != t and the others get
 * r = t. Each pair is then mapped from [0, 1] onto `interval`.
 *
 * @param n Number of pairs, a non-negative integer.
 * @param rng The generator (advanced).
 * @param options Distribution parameters.
 * @returns The pairs.
 * @throws {RangeError} On an invalid option, naming it.
 * @example
 * ```ts
 * import { sampleTimes } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const { r, t } = sampleTimes(8, new Rng(0), { distinctFraction: 0.25 });
 * assert.deepEqual(r.filter((ri, i) => ri !== t[i]).length, 2);
 * assert.ok(r.every((ri, i) => ri <= t[i]));
 * ```
 */
export function sampleTimes(n: number, rng: Rng, options: TimeSamplerOptions = {}): TimeSample {
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      throw new RangeError(
        `sampleTimes: unknown option "${key}"; expected one of ${[...KEYS].join(", ")}`,
      );
    }
  }
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`sampleTimes: n must be a non-negative integer, got ${n}`);
  }
  const mean = options.mean ?? -0.4;
  const std = options.std ?? 1.0;
  const fraction = options.distinctFraction ?? 0.25;
  const [lo, hi] = options.interval ?? [0, 1];
  if (!Number.isFinite(mean)) throw new RangeError(`sampleTimes: mean must be finite, got ${mean}`);
  if (!(std >= 0) || !Number.isFinite(std)) {
    throw new RangeError(`sampleTimes: std must be a finite number >= 0, got ${std}`);
  }
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new RangeError(`sampleTimes: distinctFraction must be in [0, 1], got ${fraction}`);
  }
  if (!(lo >= 0 && hi <= 1 && lo < hi)) {
    throw new RangeError(
      `sampleTimes: interval must satisfy 0 <= lo < hi <= 1, got [${options.interval}]`,
    );
  }
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const r = new Float32Array(n);
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = sigmoid(mean + std * rng.normal());
    const b = sigmoid(mean + std * rng.normal());
    r[i] = Math.min(a, b);
    t[i] = Math.max(a, b);
  }
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  const distinct = Math.round(fraction * n);
  for (const i of order.slice(distinct)) r[i] = t[i];
  for (let i = 0; i < n; i++) {
    r[i] = lo + (hi - lo) * r[i];
    t[i] = lo + (hi - lo) * t[i];
  }
  return { r, t };
}
