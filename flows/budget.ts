/**
 * Parameter counting and budgeting of MeanFlow stages: the exact count of a configuration
 * (without building it), and the hidden width that makes a stage hit a parameter budget, e.g.
 * the stage-4 budget that gives MFI-ResNet-50 the paper's -46.28 %.
 *
 * @module
 */
import { alignInChannels, type MeanFlowStageConfig, validateStageConfig } from "./stage_config.ts";
import { VelocityNetwork } from "./velocity_network.ts";

/**
 * Exact parameter count of a stage configuration (trainable scalars; batch-norm running
 * statistics are buffers): `in*out` (1x1 conv, no bias) + `2*out` (BN) + modules x velocity net.
 * Agrees with `countParameters(new MeanFlowStage(config))`.
 *
 * @param config A stage configuration (validated).
 * @returns The number of parameters.
 * @throws {TypeError|RangeError} On an invalid configuration.
 * @example
 * ```ts
 * import { countStageParameters } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * const n = countStageParameters({
 *   inChannels: 1024, outChannels: 2048, stride: 2, hidden: 256, modules: 1, seed: 0,
 * });
 * assert.ok(n > 1024 * 2048);
 * ```
 */
export function countStageParameters(config: MeanFlowStageConfig): number {
  const c = validateStageConfig(config);
  const net = VelocityNetwork.countParameters({
    channels: c.outChannels,
    hidden: c.hidden,
    blocks: c.blocks,
    timeEmbedDim: c.timeEmbedDim,
  });
  return alignInChannels(c) * c.outChannels + 2 * c.outChannels + c.modules * net;
}

/** The shape of a stage whose width is to be chosen. */
export type StageShape = Omit<MeanFlowStageConfig, "hidden" | "modules" | "seed"> & {
  /** Fix the module count; omitted, both 1 and 2 are tried. */
  readonly modules?: 1 | 2;
  /** Seed (default 0; does not affect the count). */
  readonly seed?: number;
};

/** A width that hits a parameter budget. */
export interface BudgetFit {
  /** Hidden width h. */
  readonly hidden: number;
  /** Module count. */
  readonly modules: 1 | 2;
  /** Exact parameter count at this width. */
  readonly parameters: number;
  /** `(parameters - target) / target`. */
  readonly relativeError: number;
  /** The full configuration, ready for `new MeanFlowStage(config)`. */
  readonly config: MeanFlowStageConfig;
}

/**
 * Finds the hidden width h (and module count, if not fixed) whose exact parameter count is
 * closest to `target`. The count grows strictly with h, so a binary search per module count is
 * exact; among module counts the smaller error wins (ties: fewer modules).
 *
 * @param target Parameter budget of the whole stage (alignment included).
 * @param shape Channels, stride and optional architecture keys.
 * @returns The best fit.
 * @throws {RangeError} If even h = 1 exceeds the target for every allowed module count.
 * @example
 * ```ts
 * import { countStageParameters, widthForBudget } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * const fit = widthForBudget(4_079_290, { inChannels: 1024, outChannels: 2048, stride: 2 });
 * assert.ok(Math.abs(fit.relativeError) < 0.01);
 * assert.deepEqual(countStageParameters(fit.config), fit.parameters);
 * ```
 */
export function widthForBudget(target: number, shape: StageShape): BudgetFit {
  if (!(target > 0) || !Number.isFinite(target)) {
    throw new RangeError(`widthForBudget: target must be a positive number, got ${target}`);
  }
  const candidates: BudgetFit[] = [];
  for (const modules of shape.modules === undefined ? [1, 2] as const : [shape.modules]) {
    const config = (hidden: number): MeanFlowStageConfig => ({
      ...shape,
      seed: shape.seed ?? 0,
      hidden,
      modules,
    });
    const count = (h: number) => countStageParameters(config(h));
    if (count(1) > target) continue;
    let lo = 1; // count(lo) <= target
    let hi = 2;
    while (count(hi) <= target) {
      lo = hi;
      hi *= 2;
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (count(mid) <= target) lo = mid;
      else hi = mid;
    }
    const h = Math.abs(count(hi) - target) < Math.abs(count(lo) - target) ? hi : lo;
    const parameters = count(h);
    candidates.push({
      hidden: h,
      modules,
      parameters,
      relativeError: (parameters - target) / target,
      config: validateStageConfig(config(h)),
    });
  }
  if (candidates.length === 0) {
    throw new RangeError(
      `widthForBudget: target ${target} is below the smallest stage (hidden = 1) for these channels; ` +
        "raise the target or reduce the channels",
    );
  }
  candidates.sort((a, b) =>
    Math.abs(a.relativeError) - Math.abs(b.relativeError) || a.modules - b.modules
  );
  return candidates[0];
}
