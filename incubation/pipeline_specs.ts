/**
 * The models of one run as data: the baseline ResNet, the meta model (four MeanFlow stages),
 * the incubation hybrids and MFI-ResNet, with every MeanFlow width resolved from the config
 * (`auto`, `paper` or an integer). Pure: counts come from the specs, nothing is allocated.
 *
 * @module
 */
import { widthForBudget } from "@mfi/flows";
import { residualStageInfo } from "@mfi/resnet";
import { DEFAULT_CONFIG, mergeConfig, PAPER_REDUCTION, type PipelineConfig } from "./config.ts";
import type { MeanFlowStageSpecConfig } from "./_flows.ts";
import {
  countSpecParameters,
  MODEL_SPEC_FORMAT,
  type ModelSpec,
  replaceStages,
  resnetSpec,
  validateModelSpec,
} from "./model_spec.ts";

/** Every model of a run. */
export interface PipelineSpecs {
  /** The baseline ResNet (teacher). */
  readonly baseline: ModelSpec;
  /** Teacher stem + four MeanFlow stages + head. */
  readonly meta: ModelSpec;
  /** The incubation hybrid of each incubated stage (1-based key). */
  readonly hybrids: Readonly<Record<number, ModelSpec>>;
  /** Stem + incubated residual stages + remaining MeanFlow stages + head. */
  readonly mfi: ModelSpec;
  /** The reduction `paper` widths aim at (fraction of the baseline's parameters). */
  readonly targetReduction: number;
}

/**
 * Number of classes of a dataset.
 *
 * @param dataset The dataset.
 * @returns 10 or 100.
 * @example
 * ```ts
 * import { datasetClasses } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(datasetClasses("cifar100"), 100);
 * ```
 */
export function datasetClasses(dataset: PipelineConfig["data"]["dataset"]): number {
  return dataset === "cifar100" ? 100 : 10;
}

/**
 * Resolves the specs of every model of a run. A `paper` hidden width is chosen with the flows
 * package's budget helper so that MFI-ResNet has `1 - targetReduction` of the baseline's
 * parameters at this model width (at width 1 and the defaults: the paper's -46.28 % on
 * CIFAR-10); it is allowed on one stage that stays MeanFlow in MFI-ResNet.
 *
 * @param config The validated pipeline config.
 * @returns The specs.
 * @throws {RangeError} If `paper` is used on an incubated stage or on more than one stage, or
 *   the budget left for it is too small.
 * @example
 * ```ts
 * import { countSpecParameters, DEFAULT_CONFIG, pipelineSpecs } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const specs = pipelineSpecs(DEFAULT_CONFIG);
 * const base = countSpecParameters(specs.baseline).total;
 * const mfi = countSpecParameters(specs.mfi).total;
 * assert.ok(Math.abs((1 - mfi / base) - 0.4628) < 0.005);
 * ```
 */
export function pipelineSpecs(config: PipelineConfig): PipelineSpecs {
  const { arch, width } = config.model;
  const classes = datasetClasses(config.data.dataset);
  const baseline = resnetSpec(arch, classes, width);
  const mf = config.meanflow;
  const target = mf.targetReduction ?? PAPER_REDUCTION[config.data.dataset];
  const incubated = new Set(config.incubate.stages);
  const paperStages = [1, 2, 3, 4].filter((l) => mf.hidden[l - 1] === "paper");
  if (paperStages.length > 1) {
    throw new RangeError(
      `Invalid pipeline config: "meanflow.hidden" may use "paper" on one stage, got stages ${paperStages}`,
    );
  }
  for (const l of paperStages) {
    if (incubated.has(l)) {
      throw new RangeError(
        `Invalid pipeline config: "meanflow.hidden[${
          l - 1
        }]" is "paper" but stage ${l} is incubated ` +
          "(residual in MFI-ResNet); use it on a stage that stays MeanFlow, or give an integer",
      );
    }
  }
  const configFor = (l: number, hidden: number): MeanFlowStageSpecConfig => {
    const info = residualStageInfo(arch, l - 1, width);
    return {
      inChannels: info.inChannels,
      outChannels: info.outChannels,
      stride: info.stride,
      hidden,
      modules: mf.modules[l - 1] as 1 | 2,
      blocks: mf.blocks,
      timeEmbedDim: 64,
      timeMaxFrequency: 100,
      moduleSplit: "time",
      downsample: config.align.downsample,
    };
  };
  const hidden: Array<number | undefined> = mf.hidden.map((h, i) => {
    if (typeof h === "number") return h;
    if (h === "auto") {
      const out = residualStageInfo(arch, i, width).outChannels;
      return Math.max(1, Math.round(mf.hiddenRatio * out));
    }
    return undefined;
  });
  const stagesFor = (): ModelSpec["stages"] =>
    hidden.map((h, i) => ({ kind: "meanflow" as const, config: configFor(i + 1, h ?? 1) }));
  if (paperStages.length === 1) {
    const l = paperStages[0];
    // Everything of MFI-ResNet except stage l, counted with a placeholder stage l.
    const probe = validateModelSpec({
      format: MODEL_SPEC_FORMAT,
      family: "mfi-resnet",
      arch,
      classes,
      width,
      stages: stagesFor().map((s, i) => incubated.has(i + 1) ? { kind: "residual" } : s),
    });
    const counts = countSpecParameters(probe);
    const rest = counts.total - counts.stages[l - 1];
    const budget = (1 - target) * countSpecParameters(baseline).total - rest;
    const info = residualStageInfo(arch, l - 1, width);
    if (!(budget > 0)) {
      throw new RangeError(
        `Cannot size stage ${l} for a ${(target * 100).toFixed(2)} % reduction: the other parts ` +
          `already have ${rest} parameters; lower meanflow.targetReduction or the other widths`,
      );
    }
    try {
      hidden[l - 1] = widthForBudget(budget, {
        inChannels: info.inChannels,
        outChannels: info.outChannels,
        stride: info.stride,
        modules: mf.modules[l - 1] as 1 | 2,
        blocks: mf.blocks,
        downsample: config.align.downsample,
      }).hidden;
    } catch (e) {
      throw new RangeError(
        `Cannot size stage ${l} for a ${
          (target * 100).toFixed(2)
        } % reduction at width ${width}: ` +
          `${Math.round(budget)} parameters are left for it (${(e as Error).message}); ` +
          `set meanflow.hidden[${l - 1}] to an integer or raise model.width`,
      );
    }
  }
  const meta = validateModelSpec({
    format: MODEL_SPEC_FORMAT,
    family: "meta",
    arch,
    classes,
    width,
    stages: stagesFor(),
  });
  const hybrids: Record<number, ModelSpec> = {};
  for (const k of config.incubate.stages) {
    hybrids[k] = replaceStages(meta, { [k - 1]: { kind: "residual" } }, "hybrid");
  }
  const mfi = replaceStages(
    meta,
    Object.fromEntries(config.incubate.stages.map((k) => [k - 1, { kind: "residual" as const }])),
    "mfi-resnet",
  );
  return Object.freeze({
    baseline,
    meta,
    hybrids: Object.freeze(hybrids),
    mfi,
    targetReduction: target,
  });
}

/**
 * The specs of a run with docs/method.md's defaults for one architecture, class count and width:
 * what `deno task params --model mfi-resnet50` counts.
 *
 * @param arch Architecture name.
 * @param options Class count (10 = CIFAR-10 target reduction, 100 = CIFAR-100) and width.
 * @returns The run's specs.
 * @throws {RangeError} If `classes` is not 10 or 100, or the width leaves no room for stage 4.
 * @example
 * ```ts
 * import { countSpecParameters, defaultSpecs } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(countSpecParameters(defaultSpecs("resnet50", { classes: 10 }).mfi).total, 12_635_082);
 * ```
 */
export function defaultSpecs(
  arch: PipelineConfig["model"]["arch"],
  options: { readonly classes: number; readonly width?: number },
): PipelineSpecs {
  if (options.classes !== 10 && options.classes !== 100) {
    throw new RangeError(
      `defaultSpecs: classes must be 10 (CIFAR-10) or 100 (CIFAR-100), got ${options.classes}`,
    );
  }
  return pipelineSpecs(
    mergeConfig(DEFAULT_CONFIG, {
      model: { arch, width: options.width ?? 1 },
      data: { dataset: options.classes === 100 ? "cifar100" : "cifar10" },
    }),
  );
}
