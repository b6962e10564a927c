/**
 * The MeanFlow (r, t) sampler: t and r from their own logit-normal distributions, post-processed
 * so that r <= t, a fraction of the pairs kept with r != t (the others get r = t, plain flow
 * matching), an optional share placed exactly at the interval used at inference, and the result
 * mapped onto a sub-interval of [0, 1]. {@linkcode SAMPLER_PRESETS} holds MeanFlow's published
 * settings.
 *
 * @module
 */
import type { Rng } from "@mfi/core";

/** A logit-normal distribution: `sigmoid(mean + std * N(0, 1))`. */
export interface LogitNormal {
  /** Mean of the underlying normal. */
  readonly mean: number;
  /** Standard deviation of the underlying normal (>= 0). */
  readonly std: number;
}

/**
 * How the two draws become (r, t):
 * - `"sort-then-mask"`: r = min, t = max of the two draws, then the masked pairs get r = t
 *   (MeanFlow's paper, "v0", and its ImageNet setting);
 * - `"mask-then-min"`: t keeps its own draw, the masked pairs get r = t, then r = min(r, t)
 *   (MeanFlow's improved CIFAR-10 setting, "v1").
 */
export type SamplerOrder = "sort-then-mask" | "mask-then-min";

/** Options of {@linkcode sampleTimes}. */
export interface TimeSamplerOptions {
  /** Mean of both logit-normals' underlying normal, unless `t`/`r` are given (default -0.4). */
  readonly mean?: number;
  /** Standard deviation of both underlying normals, unless `t`/`r` are given (default 1.0). */
  readonly std?: number;
  /** Distribution of the first draw (t); default `{ mean, std }`. */
  readonly t?: LogitNormal;
  /** Distribution of the second draw (r); default `{ mean, std }`. */
  readonly r?: LogitNormal;
  /** Post-processing order (default `"sort-then-mask"`). */
  readonly order?: SamplerOrder;
  /** Fraction of pairs that keep r != t (default 0.25); the rest get r = t. 0 = flow matching. */
  readonly distinctFraction?: number;
  /**
   * Share of pairs set to exactly (r, t) = (0, 1) after the above, i.e. the whole `interval`
   * that one step covers at inference (default 0). Drawn at random positions.
   */
  readonly exactShare?: number;
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

/** The sampler settings of a preset (everything but `interval`). */
export type SamplerSettings = Readonly<
  Required<Omit<TimeSamplerOptions, "interval" | "mean" | "std">>
>;

/**
 * MeanFlow's published (r, t) samplers: `v0` (its paper's CIFAR-10 setting: t, r ~ LN(-2, 2),
 * sorted, 75 % r != t), `v1` (its improved CIFAR-10 setting: t ~ LN(-0.6, 1.6), r ~ LN(-4, 1.6),
 * masked first, then r = min(r, t), 75 % r != t) and `imagenet` (t, r ~ LN(-0.4, 1), sorted,
 * 25 % r != t). None places a share at the inference interval (`exactShare: 0`).
 *
 * @example
 * ```ts
 * import { SAMPLER_PRESETS } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * assert.equal(SAMPLER_PRESETS.v1.r.mean, -4);
 * assert.equal(SAMPLER_PRESETS.imagenet.distinctFraction, 0.25);
 * ```
 */
export const SAMPLER_PRESETS: Readonly<Record<"v0" | "v1" | "imagenet", SamplerSettings>> = Object
  .freeze({
    v0: Object.freeze({
      t: Object.freeze({ mean: -2, std: 2 }),
      r: Object.freeze({ mean: -2, std: 2 }),
      order: "sort-then-mask",
      distinctFraction: 0.75,
      exactShare: 0,
    }),
    v1: Object.freeze({
      t: Object.freeze({ mean: -0.6, std: 1.6 }),
      r: Object.freeze({ mean: -4, std: 1.6 }),
      order: "mask-then-min",
      distinctFraction: 0.75,
      exactShare: 0,
    }),
    imagenet: Object.freeze({
      t: Object.freeze({ mean: -0.4, std: 1 }),
      r: Object.freeze({ mean: -0.4, std: 1 }),
      order: "sort-then-mask",
      distinctFraction: 0.25,
      exactShare: 0,
    }),
  });

/**
 * The option names of {@linkcode sampleTimes}, for callers that pass sampler options through.
 *
 * @example
 * ```ts
 * import { SAMPLER_OPTION_KEYS } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * assert.ok(SAMPLER_OPTION_KEYS.includes("exactShare"));
 * ```
 */
export const SAMPLER_OPTION_KEYS: readonly (keyof TimeSamplerOptions)[] = Object.freeze([
  "mean",
  "std",
  "t",
  "r",
  "order",
  "distinctFraction",
  "exactShare",
  "interval",
]);

const KEYS = new Set<string>(SAMPLER_OPTION_KEYS);

function fraction(value: number, key: string): number {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`sampleTimes: ${key} must be in [0, 1], got ${value}`);
  }
  return value;
}

function distribution(d: LogitNormal, key: string): LogitNormal {
  if (typeof d !== "object" || d === null) {
    throw new TypeError(`sampleTimes: ${key} must be { mean, std }, got ${JSON.stringify(d)}`);
  }
  if (!Number.isFinite(d.mean)) {
    throw new RangeError(
      `sampleTimes: ${key === "" ? "mean" : `${key}.mean`} must be finite, got ${d.mean}`,
    );
  }
  if (!(d.std >= 0) || !Number.isFinite(d.std)) {
    throw new RangeError(
      `sampleTimes: ${
        key === "" ? "std" : `${key}.std`
      } must be a finite number >= 0, got ${d.std}`,
    );
  }
  return d;
}

/**
 * Draws `n` pairs (r, t). For each pair, a from `t`'s and b from `r`'s logit-normal; then, by
 * `order`, either r = min(a, b), t = max(a, b) and the masked pairs get r = t, or t = a, the
 * masked pairs get r = t, and r = min(b, t). Exactly `round(distinctFraction * n)` pairs, at
 * random positions, are unmasked. Then `round(exactShare * n)` pairs at random positions become
 * (0, 1). Finally each pair is mapped from [0, 1] onto `interval`. The defaults reproduce the
 * ImageNet setting; the generator is consumed identically whatever `order`, and the exact share
 * draws only when it is above 0.
 *
 * @param n Number of pairs, a non-negative integer.
 * @param rng The generator (advanced).
 * @param options Distribution parameters.
 * @returns The pairs.
 * @throws {RangeError} On an invalid option, naming it.
 * @example
 * ```ts
 * import { SAMPLER_PRESETS, sampleTimes } from "@mfi/flows";
 * import { Rng } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const { r, t } = sampleTimes(8, new Rng(0), { distinctFraction: 0.25 });
 * assert.deepEqual(r.filter((ri, i) => ri !== t[i]).length, 2);
 * assert.ok(r.every((ri, i) => ri <= t[i]));
 * const v1 = sampleTimes(100, new Rng(0), { ...SAMPLER_PRESETS.v1, exactShare: 0.25 });
 * assert.equal(v1.r.filter((ri, i) => ri === 0 && v1.t[i] === 1).length, 25);
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
  const both = distribution({ mean: options.mean ?? -0.4, std: options.std ?? 1.0 }, "");
  const dt = options.t === undefined ? both : distribution(options.t, "t");
  const dr = options.r === undefined ? both : distribution(options.r, "r");
  const order = options.order ?? "sort-then-mask";
  if (order !== "sort-then-mask" && order !== "mask-then-min") {
    throw new RangeError(
      `sampleTimes: order must be "sort-then-mask" or "mask-then-min", got ${
        JSON.stringify(order)
      }`,
    );
  }
  const distinctFraction = fraction(options.distinctFraction ?? 0.25, "distinctFraction");
  const exactShare = fraction(options.exactShare ?? 0, "exactShare");
  const [lo, hi] = options.interval ?? [0, 1];
  if (!(lo >= 0 && hi <= 1 && lo < hi)) {
    throw new RangeError(
      `sampleTimes: interval must satisfy 0 <= lo < hi <= 1, got [${options.interval}]`,
    );
  }
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = sigmoid(dt.mean + dt.std * rng.normal());
    b[i] = sigmoid(dr.mean + dr.std * rng.normal());
  }
  const order0 = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  const masked = new Uint8Array(n);
  for (const i of order0.slice(Math.round(distinctFraction * n))) masked[i] = 1;
  const r = new Float32Array(n);
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (order === "sort-then-mask") {
      t[i] = Math.max(a[i], b[i]);
      r[i] = masked[i] ? t[i] : Math.min(a[i], b[i]);
    } else {
      t[i] = a[i];
      r[i] = masked[i] ? t[i] : Math.min(b[i], t[i]);
    }
  }
  if (exactShare > 0) {
    const order1 = rng.shuffle(Array.from({ length: n }, (_, i) => i));
    for (const i of order1.slice(0, Math.round(exactShare * n))) {
      r[i] = 0;
      t[i] = 1;
    }
  }
  for (let i = 0; i < n; i++) {
    r[i] = lo + (hi - lo) * r[i];
    t[i] = lo + (hi - lo) * t[i];
  }
  return { r, t };
}
