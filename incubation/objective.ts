/**
 * The stage-fit objective as data: everything that decides how a MeanFlow stage is fitted to its
 * teacher stage (alignment downsampling and mode, MeanFlow loss on or off, endpoint weight and
 * normalisation, (r, t) sampler, adaptive weight), resolved from a config so that a compress
 * phase carries it whole, and the ablation variants as patches that change only it.
 *
 * @module
 */
import { SAMPLER_PRESETS, type StageLossOptions, type TimeSamplerOptions } from "@mfi/flows";
import type { Rng } from "@mfi/core";
import {
  type AblationVariant,
  type AlignConfig,
  type MeanFlowConfig,
  mergeConfig,
  type PipelineConfig,
  type SamplerChoice,
} from "./config.ts";

/** The resolved objective of a stage fit. */
export interface StageObjective {
  /** The MeanFlow loss is part of the total. */
  readonly meanflow: boolean;
  /** Weight of the endpoint term (0 = MeanFlow loss alone). */
  readonly lambda: number;
  /** How the endpoint term is measured. */
  readonly endpointNorm: MeanFlowConfig["endpointNorm"];
  /** Adaptive-weight power p. */
  readonly p: number;
  /** Adaptive-weight constant c. */
  readonly c: number;
  /** The sampler's name (`v1`, `v0`, `imagenet`, or `custom`). */
  readonly samplerName: string;
  /** The (r, t) sampler, resolved to numbers (with the interval share as `exactShare`). */
  readonly sampler: Required<Omit<TimeSamplerOptions, "interval" | "mean" | "std">>;
  /** The alignment. */
  readonly align: AlignConfig;
}

/**
 * Resolves a sampler choice and an interval share into the flows package's sampler options.
 *
 * @param choice A preset name or an explicit sampler.
 * @param intervalShare Share of draws exactly at the inference interval.
 * @returns Sampler options for `sampleTimes` / `meanFlowStageLoss`.
 * @example
 * ```ts
 * import { resolveSampler } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const s = resolveSampler("v1", 0.25);
 * assert.deepEqual([s.t.mean, s.r.mean, s.order, s.exactShare], [-0.6, -4, "mask-then-min", 0.25]);
 * ```
 */
export function resolveSampler(
  choice: SamplerChoice,
  intervalShare: number,
): StageObjective["sampler"] {
  const base = typeof choice === "string" ? SAMPLER_PRESETS[choice] : {
    t: { mean: choice.tMean, std: choice.tStd },
    r: { mean: choice.rMean, std: choice.rStd },
    order: choice.order,
    distinctFraction: choice.distinctFraction,
  };
  return Object.freeze({
    t: Object.freeze({ ...base.t }),
    r: Object.freeze({ ...base.r }),
    order: base.order,
    distinctFraction: base.distinctFraction,
    exactShare: intervalShare,
  });
}

/**
 * The stage-fit objective of a config.
 *
 * @param config A validated pipeline config.
 * @returns The frozen objective.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, stageObjective } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const o = stageObjective(DEFAULT_CONFIG);
 * assert.deepEqual([o.samplerName, o.p, o.endpointNorm, o.align.downsample], ["v1", 0.75, "variance", "avgpool"]);
 * ```
 */
export function stageObjective(config: PipelineConfig): StageObjective {
  const m = config.meanflow;
  return Object.freeze({
    meanflow: m.meanflow,
    lambda: m.lambda,
    endpointNorm: m.endpointNorm,
    p: m.p,
    c: m.c,
    samplerName: typeof m.sampler === "string" ? m.sampler : "custom",
    sampler: resolveSampler(m.sampler, m.intervalShare),
    align: config.align,
  });
}

/**
 * The stage loss options of an objective (for `meanFlowStageLoss` and `stageGradNorms`).
 *
 * @param objective The objective.
 * @param rng The generator of the (r, t) draws.
 * @param training Batch-norm mode of the alignment (false when it is frozen).
 * @returns The options.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, stageLossOptions, stageObjective } from "@mfi/incubation";
 * import { Rng } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const o = stageLossOptions(stageObjective(DEFAULT_CONFIG), new Rng(0), true);
 * assert.equal(o.p, 0.75);
 * ```
 */
export function stageLossOptions(
  objective: StageObjective,
  rng: Rng,
  training: boolean,
): StageLossOptions {
  return {
    rng,
    meanflow: objective.meanflow,
    lambda: objective.lambda,
    endpointNorm: objective.endpointNorm,
    p: objective.p,
    c: objective.c,
    sampler: objective.sampler,
    training,
  };
}

/**
 * A one-line description of an objective, for reports.
 *
 * @param objective The objective.
 * @returns E.g. `MeanFlow loss + 1 x endpoint (variance-normalised); v1 sampler, 25 % at the
 *   interval, p 0.75; avgpool alignment, joint`.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, objectiveName, stageObjective } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.match(objectiveName(stageObjective(DEFAULT_CONFIG)), /^MeanFlow loss \+ 1 x endpoint/);
 * ```
 */
export function objectiveName(objective: StageObjective): string {
  const o = objective;
  const endpoint = `endpoint${o.endpointNorm === "variance" ? " (variance-normalised)" : " (raw)"}`;
  const loss = !o.meanflow
    ? `${endpoint} regression alone`
    : o.lambda === 0
    ? "MeanFlow loss alone"
    : `MeanFlow loss + ${o.lambda} x ${endpoint}`;
  const sampler = o.meanflow
    ? `; ${o.samplerName} sampler, ${
      Math.round(100 * o.sampler.exactShare)
    } % at the interval, p ${o.p}`
    : "";
  return `${loss}${sampler}; ${o.align.downsample} alignment, ${o.align.mode}`;
}

/**
 * The config patch of an ablation variant: only the stage-fit objective changes.
 *
 * @param variant The variant.
 * @param config The run's config (the variant keeps its lambda where it can).
 * @returns A partial config for `mergeConfig`.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, variantPatch } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(variantPatch("endpoint-only", DEFAULT_CONFIG), {
 *   meanflow: { meanflow: false, lambda: 1 },
 *   align: { mode: "joint" },
 * });
 * ```
 */
export function variantPatch(variant: AblationVariant, config: PipelineConfig): unknown {
  const lambda = config.meanflow.lambda > 0 ? config.meanflow.lambda : 1;
  switch (variant) {
    case "meanflow-only":
      return { meanflow: { meanflow: true, lambda: 0 }, align: { mode: "joint" } };
    case "meanflow-prefit":
      return { meanflow: { meanflow: true, lambda: 0 }, align: { mode: "prefit" } };
    case "endpoint-only":
      return { meanflow: { meanflow: false, lambda }, align: { mode: "joint" } };
    case "both":
      return { meanflow: { meanflow: true, lambda }, align: { mode: "joint" } };
    case "legacy":
      return LEGACY_OBJECTIVE;
  }
}

/**
 * The first implementation's stage-fit objective as a config patch: strided alignment (joint),
 * ImageNet sampler with no draws at the inference interval, p = 1, raw endpoint term, both terms
 * with lambda 1. With `finetune.recalibrateBatches: 0` and `matched.enabled: false` as well it
 * reproduces runs made before the fair-test options existed.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, LEGACY_OBJECTIVE, mergeConfig, stageObjective } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const o = stageObjective(mergeConfig(DEFAULT_CONFIG, LEGACY_OBJECTIVE));
 * assert.deepEqual([o.samplerName, o.p, o.align.downsample], ["imagenet", 1, "stride"]);
 * ```
 */
export const LEGACY_OBJECTIVE: {
  readonly meanflow: Readonly<Record<string, unknown>>;
  readonly align: Readonly<Record<string, unknown>>;
} = Object.freeze({
  meanflow: Object.freeze({
    meanflow: true,
    lambda: 1,
    sampler: "imagenet",
    intervalShare: 0,
    p: 1,
    c: 1e-3,
    endpointNorm: "none",
  }),
  align: Object.freeze({ downsample: "stride", mode: "joint", prefitEpochs: 1 }),
});

/** One planned ablation variant. */
export interface PlannedVariant {
  /** The variant. */
  readonly variant: AblationVariant;
  /** The run's config with the variant's objective (everything else equal). */
  readonly config: PipelineConfig;
  /** Its resolved objective. */
  readonly objective: StageObjective;
}

/**
 * The ablation variants a config asks for, each as the run's config with another objective; a
 * variant whose objective equals the run's own is left out (the run's own fits are that row).
 *
 * @param config The run's config.
 * @returns The variants, in report order.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig, planVariants } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const c = mergeConfig(DEFAULT_CONFIG, { ablation: ["both", "endpoint-only"] });
 * // "both" is the default objective itself, so only endpoint-only remains.
 * assert.deepEqual(planVariants(c).map((v) => v.variant), ["endpoint-only"]);
 * ```
 */
export function planVariants(config: PipelineConfig): PlannedVariant[] {
  const own = JSON.stringify(stageObjective(config));
  return config.ablation.flatMap((variant) => {
    const sub = mergeConfig(config, variantPatch(variant, config), { ablation: [] });
    const objective = stageObjective(sub);
    return JSON.stringify(objective) === own ? [] : [{ variant, config: sub, objective }];
  });
}
