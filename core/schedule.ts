/**
 * Learning-rate schedules as pure functions of the optimizer step (nanoGPT's `get_lr`).
 *
 * @module
 */

/** A learning-rate schedule: the rate for a 0-based optimizer step. */
export type LrSchedule = (step: number) => number;

/** Options of {@linkcode cosineSchedule}. */
export interface CosineScheduleOptions {
  /** Peak learning rate, reached at the end of warm-up (step `warmupSteps`). */
  readonly baseLr: number;
  /** Total number of optimizer steps of the run (> `warmupSteps`). */
  readonly totalSteps: number;
  /** Linear warm-up steps (default 0). */
  readonly warmupSteps?: number;
  /** Final learning rate, reached at the last step `totalSteps - 1` (default 0). */
  readonly minLr?: number;
}

/**
 * Cosine decay with optional linear warm-up. For step `s`:
 * warm-up (`s < W`): `baseLr * (s + 1) / (W + 1)`; then
 * `minLr + (baseLr - minLr) * (1 + cos(pi * (s - W) / (T - 1 - W))) / 2`, so the rate is `baseLr` at
 * `s = W` and exactly `minLr` at the last step `s = T - 1` (and after it).
 *
 * @param options Peak and final rate, total and warm-up steps.
 * @returns The schedule.
 * @throws {RangeError} If a rate is negative, `minLr > baseLr`, or the step counts are invalid.
 * @example
 * ```ts
 * import { cosineSchedule } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const lr = cosineSchedule({ baseLr: 0.1, totalSteps: 101, warmupSteps: 0 });
 * assert.equal(lr(0), 0.1);
 * assert.ok(Math.abs(lr(50) - 0.05) < 1e-12);
 * assert.equal(lr(100), 0);
 * ```
 */
export function cosineSchedule(options: CosineScheduleOptions): LrSchedule {
  const { baseLr, totalSteps } = options;
  const warmup = options.warmupSteps ?? 0;
  const minLr = options.minLr ?? 0;
  if (!Number.isFinite(baseLr) || baseLr < 0) {
    throw new RangeError(`Cannot build the cosine schedule: baseLr must be >= 0, got ${baseLr}`);
  }
  if (!Number.isFinite(minLr) || minLr < 0 || minLr > baseLr) {
    throw new RangeError(
      `Cannot build the cosine schedule: minLr must be in [0, baseLr=${baseLr}], got ${minLr}`,
    );
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(
      `Cannot build the cosine schedule: totalSteps must be a positive integer, got ${totalSteps}`,
    );
  }
  if (!Number.isInteger(warmup) || warmup < 0 || warmup >= totalSteps) {
    throw new RangeError(
      `Cannot build the cosine schedule: warmupSteps must be an integer in [0, totalSteps=${totalSteps}), got ${warmup}`,
    );
  }
  const decaySteps = totalSteps - 1 - warmup;
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`Learning-rate schedule: step must be an integer >= 0, got ${step}`);
    }
    if (step < warmup) return (baseLr * (step + 1)) / (warmup + 1);
    if (step >= totalSteps - 1 || decaySteps === 0) return minLr;
    const progress = (step - warmup) / decaySteps;
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * A constant learning rate.
 *
 * @param lr The rate.
 * @returns The schedule.
 * @throws {RangeError} If `lr` is negative or not finite.
 * @example
 * ```ts
 * import { constantSchedule } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(constantSchedule(0.01)(1000), 0.01);
 * ```
 */
export function constantSchedule(lr: number): LrSchedule {
  if (!Number.isFinite(lr) || lr < 0) {
    throw new RangeError(`Cannot build a constant schedule: lr must be >= 0, got ${lr}`);
  }
  return () => lr;
}
