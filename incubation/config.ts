/**
 * The pipeline config: one typed, validated, frozen object (from a YAML preset, a YAML file and
 * `--set key=value` overrides) that fixes every choice of a run. Defaults are docs/method.md's
 * (section 7 for optimisers and schedules; "ours" choices are options with the stated default).
 *
 * @module
 */
import yaml from "js-yaml";
import {
  type Downsample,
  DOWNSAMPLE_MODES,
  type EndpointNorm,
  type SamplerOrder,
} from "@mfi/flows";

/** Hyperparameters of one training phase. */
export interface TrainConfig {
  /** Passes over the training subset (0 = no training, evaluate only). */
  readonly epochs: number;
  /** Mini-batch size. */
  readonly batchSize: number;
  /** Optimiser: SGD (momentum, optional Nesterov) or AdamW. */
  readonly optimizer: "sgd" | "adamw";
  /** Peak learning rate of the cosine schedule. */
  readonly lr: number;
  /** SGD momentum (ignored by AdamW). */
  readonly momentum: number;
  /** Nesterov momentum for SGD. */
  readonly nesterov: boolean;
  /** Weight decay (SGD: coupled L2; AdamW: decoupled). */
  readonly weightDecay: number;
  /** Linear warm-up, in epochs (may be fractional). */
  readonly warmupEpochs: number;
}

/** Dataset and subset. */
export interface DataConfig {
  /** Which CIFAR. */
  readonly dataset: "cifar10" | "cifar100";
  /** Training images per class (stratified, seeded); null = all. */
  readonly trainPerClass: number | null;
  /** Test images per class; null = all. */
  readonly testPerClass: number | null;
  /** Random crop 32 pad 4 + horizontal flip on training batches. */
  readonly augment: boolean;
  /** Batch size of evaluation and of the timing probe's forward passes. */
  readonly evalBatchSize: number;
}

/** The ResNet the pipeline starts from. */
export interface ModelConfig {
  /** Architecture name. */
  readonly arch: "resnet18" | "resnet34" | "resnet50" | "resnet101";
  /** Width multiplier (1 = the paper's 64-128-256-512). */
  readonly width: number;
}

/** A stage's MeanFlow hidden width: an integer, `auto` (ratio x channels) or `paper`. */
export type HiddenChoice = number | "auto" | "paper";

/**
 * An explicit (r, t) sampler: t ~ logit-normal(tMean, tStd), r ~ logit-normal(rMean, rStd),
 * `distinctFraction` of the pairs keep r != t, post-processed in `order`.
 */
export interface SamplerSpec {
  /** Mean of t's underlying normal. */
  readonly tMean: number;
  /** Standard deviation of t's underlying normal. */
  readonly tStd: number;
  /** Mean of r's underlying normal. */
  readonly rMean: number;
  /** Standard deviation of r's underlying normal. */
  readonly rStd: number;
  /** Fraction of pairs with r != t. */
  readonly distinctFraction: number;
  /** Post-processing order (see `SamplerOrder` in `@mfi/flows`). */
  readonly order: SamplerOrder;
}

/** The (r, t) sampler of the stage fits: a MeanFlow preset by name, or explicit. */
export type SamplerChoice = "v0" | "v1" | "imagenet" | SamplerSpec;

/** The sampler preset names. */
export const SAMPLER_NAMES: readonly ("v0" | "v1" | "imagenet")[] = Object.freeze([
  "v1",
  "v0",
  "imagenet",
]);

/** The MeanFlow stages' dimension alignment (how X(l-1) becomes x1 = z_align). */
export interface AlignConfig {
  /** How stages 2-4 halve the resolution before the 1x1 convolution. */
  readonly downsample: Downsample;
  /**
   * `joint`: the alignment trains with the velocity networks; `prefit`: it is first fitted by
   * regression to X(l) (`prefitEpochs`), then frozen while the velocity networks are fitted.
   */
  readonly mode: "joint" | "prefit";
  /** Epochs of the alignment's regression before the fit (`prefit` only). */
  readonly prefitEpochs: number;
}

/** MeanFlow stages and their objective (docs/method.md sections 4-5). */
export interface MeanFlowConfig {
  /** MeanFlow modules of stages 1-4 (stage 4: "two-layer MeanFlow"). */
  readonly modules: readonly [number, number, number, number];
  /**
   * Hidden widths of stages 1-4: an integer; `auto` = `hiddenRatio` x the stage's output
   * channels; `paper` = the width with which MFI-ResNet has the paper's parameter reduction
   * (`targetReduction`) at this model width.
   */
  readonly hidden: readonly [HiddenChoice, HiddenChoice, HiddenChoice, HiddenChoice];
  /** Ratio of `auto` hidden widths. */
  readonly hiddenRatio: number;
  /** Target parameter reduction of MFI-ResNet vs the baseline; null = the paper's for the dataset. */
  readonly targetReduction: number | null;
  /** Residual blocks per velocity network. */
  readonly blocks: number;
  /** Weight of the one-step endpoint loss (0 = MeanFlow loss alone). */
  readonly lambda: number;
  /** The MeanFlow loss on (true) or off (false: endpoint regression alone; needs lambda > 0). */
  readonly meanflow: boolean;
  /** The (r, t) sampler of the MeanFlow loss. */
  readonly sampler: SamplerChoice;
  /** Share of (r, t) draws placed exactly at each module's inference interval. */
  readonly intervalShare: number;
  /** Adaptive-weight power p of the MeanFlow loss. */
  readonly p: number;
  /** Adaptive-weight constant c of the MeanFlow loss. */
  readonly c: number;
  /** How the endpoint term is measured: normalised by the teacher's per-channel variance, or raw. */
  readonly endpointNorm: EndpointNorm;
}

/** The assembled model's fine-tune (docs/method.md section 7). */
export interface FinetuneConfig extends TrainConfig {
  /**
   * Training batches run through the assembled MFI-ResNet in training mode (no weight update)
   * to recalibrate batch-norm running statistics before fine-tuning; 0 = none.
   */
  readonly recalibrateBatches: number;
}

/**
 * The compute-matched baseline: the baseline trained further with the fine-tune's
 * hyperparameters, for as many epochs as MFI-ResNet spends on incubation and fine-tuning.
 */
export interface MatchedConfig {
  /** Run the phase (`matched`). */
  readonly enabled: boolean;
  /** Epochs; `auto` = incubate.epochs x incubated stages + finetune.epochs. */
  readonly epochs: number | "auto";
}

/** Selective incubation (docs/method.md section 7). */
export interface IncubateConfig extends TrainConfig {
  /** 1-based stages to incubate (stage 4 stays MeanFlow in MFI-ResNet). */
  readonly stages: readonly number[];
  /** Initialise incubated blocks from the baseline or randomly (Deep Incubation). */
  readonly init: "baseline" | "random";
}

/** Baseline phase: train, or load a given checkpoint. */
export interface BaselineConfig extends TrainConfig {
  /** Path to a checkpoint (ours or a PyTorch safetensors state_dict) to use instead of training. */
  readonly checkpoint: string | null;
}

/**
 * A stage-fit ablation variant (docs/method.md section 5): the four stage fits again, from the run's
 * baseline, with another objective. `meanflow-only`: the MeanFlow loss alone, alignment joint;
 * `meanflow-prefit`: the MeanFlow loss alone, alignment prefitted and frozen; `endpoint-only`:
 * one-step endpoint regression alone; `both`: the MeanFlow loss + lambda x the balanced endpoint
 * term; `legacy`: the first implementation's objective (stride alignment, ImageNet sampler with no
 * interval share, p = 1, raw endpoint term, both terms).
 */
export type AblationVariant =
  | "meanflow-only"
  | "meanflow-prefit"
  | "endpoint-only"
  | "both"
  | "legacy";

/** The ablation variants, in report order. */
export const ABLATION_VARIANTS: readonly AblationVariant[] = Object.freeze([
  "meanflow-only",
  "meanflow-prefit",
  "endpoint-only",
  "both",
  "legacy",
]);

/** The whole pipeline. */
export interface PipelineConfig {
  /** Preset or run name. */
  readonly name: string;
  /** One line saying what the config is for. */
  readonly description: string;
  /** Base seed; every random draw derives from it. */
  readonly seed: number;
  /** Data. */
  readonly data: DataConfig;
  /** Baseline model. */
  readonly model: ModelConfig;
  /** MeanFlow stages. */
  readonly meanflow: MeanFlowConfig;
  /** The MeanFlow stages' alignment. */
  readonly align: AlignConfig;
  /** Phase 1. */
  readonly baseline: BaselineConfig;
  /** Phase 2: fitting each MeanFlow stage to teacher features. */
  readonly compress: TrainConfig & { readonly stages: readonly number[] };
  /** Phase 2b: the meta model's brief fine-tune. */
  readonly meta: TrainConfig & { readonly trainable: "head" | "all" };
  /** Phase 3. */
  readonly incubate: IncubateConfig;
  /** Phase 4: the assembled MFI-ResNet, end to end. */
  readonly finetune: FinetuneConfig;
  /** The compute-matched baseline. */
  readonly matched: MatchedConfig;
  /**
   * Stage-fit ablation variants: each adds the four stage fits with that objective, from this
   * run's baseline, as phases `VARIANT/compress:l` (reported in this run's report); empty = none.
   */
  readonly ablation: readonly AblationVariant[];
}

const sgd = (lr: number, epochs: number): TrainConfig => ({
  epochs,
  batchSize: 128,
  optimizer: "sgd",
  lr,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  warmupEpochs: 0,
});

/** docs/method.md's defaults (paper scale: full width, full data, 200-epoch ResNet-50 on CIFAR-10). */
export const DEFAULT_CONFIG: PipelineConfig = deepFreeze({
  name: "default",
  description: "the documented defaults: ResNet-50, CIFAR-10, full width and data",
  seed: 0,
  data: {
    dataset: "cifar10",
    trainPerClass: null,
    testPerClass: null,
    augment: true,
    evalBatchSize: 256,
  },
  model: { arch: "resnet50", width: 1 },
  meanflow: {
    modules: [1, 1, 1, 2],
    hidden: ["auto", "auto", "auto", "paper"],
    hiddenRatio: 1,
    targetReduction: null,
    blocks: 1,
    lambda: 1,
    meanflow: true,
    sampler: "v1",
    intervalShare: 0.25,
    p: 0.75,
    c: 1e-3,
    endpointNorm: "variance",
  },
  align: { downsample: "avgpool", mode: "joint", prefitEpochs: 1 },
  baseline: { ...sgd(0.1, 200), checkpoint: null },
  compress: {
    ...sgd(1e-3, 10),
    optimizer: "adamw",
    weightDecay: 0,
    nesterov: false,
    stages: [1, 2, 3, 4],
  },
  meta: { ...sgd(0.01, 2), trainable: "head" },
  incubate: { ...sgd(0.01, 20), stages: [1, 2, 3], init: "baseline" },
  finetune: { ...sgd(0.01, 20), recalibrateBatches: 50 },
  matched: { enabled: true, epochs: "auto" },
  ablation: [],
} as PipelineConfig);

/** The paper's parameter reductions of MFI-ResNet-50 (docs/method.md section 1). */
export const PAPER_REDUCTION: Readonly<Record<DataConfig["dataset"], number>> = Object.freeze({
  cifar10: 0.4628,
  cifar100: 0.4559,
});

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

type Check = (value: unknown, key: string) => unknown;

function err(key: string, message: string, Err: typeof TypeError = TypeError): never {
  throw new Err(`Invalid pipeline config: "${key}" ${message}`);
}

const num =
  (opts: { int?: boolean; min?: number; max?: number; gt?: number }): Check => (v, key) => {
    if (typeof v !== "number") err(key, `must be a number, got ${JSON.stringify(v)}`);
    if (!Number.isFinite(v)) err(key, `must be finite, got ${v}`, RangeError);
    if (opts.int && !Number.isInteger(v)) err(key, `must be an integer, got ${v}`, RangeError);
    if (opts.min !== undefined && v < opts.min) {
      err(key, `must be >= ${opts.min}, got ${v}`, RangeError);
    }
    if (opts.max !== undefined && v > opts.max) {
      err(key, `must be <= ${opts.max}, got ${v}`, RangeError);
    }
    if (opts.gt !== undefined && v <= opts.gt) {
      err(key, `must be > ${opts.gt}, got ${v}`, RangeError);
    }
    return v;
  };
const str: Check = (v, key) =>
  typeof v === "string" ? v : err(key, `must be a string, got ${JSON.stringify(v)}`);
const bool: Check = (v, key) =>
  typeof v === "boolean" ? v : err(key, `must be true or false, got ${JSON.stringify(v)}`);
const oneOf = (...options: unknown[]): Check => (v, key) =>
  options.includes(v) ? v : err(
    key,
    `must be one of ${options.map((o) => JSON.stringify(o)).join(", ")}, got ${JSON.stringify(v)}`,
  );
const nullable = (c: Check): Check => (v, key) => v === null ? null : c(v, key);
const list = (item: Check, length?: number, min = 0): Check => (v, key) => {
  if (!Array.isArray(v)) err(key, `must be a list, got ${JSON.stringify(v)}`);
  if (length !== undefined && v.length !== length) {
    err(key, `must have ${length} entries, got ${v.length}`, RangeError);
  }
  if (v.length < min) err(key, `must have at least ${min} entries`, RangeError);
  return v.map((x, i) => item(x, `${key}[${i}]`));
};
const stageList: Check = (v, key) => {
  const stages = list(num({ int: true, min: 1, max: 4 }))(v, key) as number[];
  if (new Set(stages).size !== stages.length) err(key, `has duplicates: ${stages}`, RangeError);
  return [...stages].sort((a, b) => a - b);
};
const variants: Check = (v, key) => {
  const names = list(oneOf(...ABLATION_VARIANTS))(v, key) as AblationVariant[];
  if (new Set(names).size !== names.length) err(key, `has duplicates: ${names}`, RangeError);
  return ABLATION_VARIANTS.filter((n) => names.includes(n));
};
const SAMPLER_SPEC: Schema = {
  tMean: num({}),
  tStd: num({ min: 0 }),
  rMean: num({}),
  rStd: num({ min: 0 }),
  distinctFraction: num({ min: 0, max: 1 }),
  order: oneOf("sort-then-mask", "mask-then-min"),
};
const sampler: Check = (v, key) => {
  if (typeof v === "string") return oneOf(...SAMPLER_NAMES)(v, key);
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    err(
      key,
      `must be a preset name (${SAMPLER_NAMES.join(", ")}) or a mapping of ${
        Object.keys(SAMPLER_SPEC).join(", ")
      }, got ${JSON.stringify(v)}`,
    );
  }
  return validateAgainst(SAMPLER_SPEC, v, key);
};
const epochsOrAuto: Check = (v, key) => v === "auto" ? v : num({ min: 0 })(v, `${key} (or "auto")`);
const hidden: Check = (v, key) =>
  v === "auto" || v === "paper" ? v : num({ int: true, min: 1 })(v, `${key} (or "auto"/"paper")`);

type Schema = { readonly [key: string]: Check | Schema };

const TRAIN: Schema = {
  epochs: num({ min: 0 }),
  batchSize: num({ int: true, min: 1 }),
  optimizer: oneOf("sgd", "adamw"),
  lr: num({ min: 0 }),
  momentum: num({ min: 0, max: 1 }),
  nesterov: bool,
  weightDecay: num({ min: 0 }),
  warmupEpochs: num({ min: 0 }),
};

const SCHEMA: Schema = {
  name: str,
  description: str,
  seed: num({ int: true, min: 0, max: 2 ** 32 - 1 }),
  data: {
    dataset: oneOf("cifar10", "cifar100"),
    trainPerClass: nullable(num({ int: true, min: 1 })),
    testPerClass: nullable(num({ int: true, min: 1 })),
    augment: bool,
    evalBatchSize: num({ int: true, min: 1 }),
  },
  model: {
    arch: oneOf("resnet18", "resnet34", "resnet50", "resnet101"),
    width: num({ gt: 0, max: 4 }),
  },
  meanflow: {
    modules: list(oneOf(1, 2), 4),
    hidden: list(hidden, 4),
    hiddenRatio: num({ gt: 0 }),
    targetReduction: nullable(num({ gt: 0, max: 0.99 })),
    blocks: num({ int: true, min: 1 }),
    lambda: num({ min: 0 }),
    meanflow: bool,
    sampler,
    intervalShare: num({ min: 0, max: 1 }),
    p: num({ min: 0 }),
    c: num({ gt: 0 }),
    endpointNorm: oneOf("variance", "none"),
  },
  align: {
    downsample: oneOf(...DOWNSAMPLE_MODES),
    mode: oneOf("joint", "prefit"),
    prefitEpochs: num({ min: 0 }),
  },
  baseline: { ...TRAIN, checkpoint: nullable(str) },
  compress: { ...TRAIN, stages: stageList },
  meta: { ...TRAIN, trainable: oneOf("head", "all") },
  incubate: { ...TRAIN, stages: stageList, init: oneOf("baseline", "random") },
  finetune: { ...TRAIN, recalibrateBatches: num({ int: true, min: 0 }) },
  matched: { enabled: bool, epochs: epochsOrAuto },
  ablation: variants,
};

function validateAgainst(schema: Schema, raw: unknown, prefix: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    err(prefix || "(root)", `must be a mapping, got ${JSON.stringify(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(key in schema)) {
      err(
        prefix ? `${prefix}.${key}` : key,
        `is not a known key; known keys${prefix ? ` of ${prefix}` : ""}: ${
          Object.keys(schema).join(", ")
        }`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, check] of Object.entries(schema)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!(key in record)) err(path, "is missing");
    out[key] = typeof check === "function"
      ? check(record[key], path)
      : validateAgainst(check, record[key], path);
  }
  return out;
}

function mergeInto(base: unknown, patch: unknown, prefix: string): unknown {
  if (
    typeof patch !== "object" || patch === null || Array.isArray(patch) ||
    typeof base !== "object" || base === null || Array.isArray(base)
  ) {
    return patch;
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (!(k in out)) {
      err(
        path,
        `is not a known key; known keys${prefix ? ` of ${prefix}` : ""}: ${
          Object.keys(out).join(", ")
        }`,
      );
    }
    out[k] = mergeInto(out[k], v, path);
  }
  return out;
}

/**
 * Validates a complete config (every key present; unknown keys and wrong types are errors naming
 * the dotted key) and freezes it. Cross-field rules: MeanFlow loss off needs `lambda > 0`.
 *
 * @param raw The candidate config.
 * @returns The frozen config.
 * @throws {TypeError} On an unknown or missing key or a wrong type.
 * @throws {RangeError} On an out-of-range value.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, validatePipelineConfig } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(validatePipelineConfig(structuredClone(DEFAULT_CONFIG)).baseline.epochs, 200);
 * assert.throws(
 *   () => validatePipelineConfig({ ...DEFAULT_CONFIG, baseline: { ...DEFAULT_CONFIG.baseline, lr: "x" } }),
 *   /"baseline.lr" must be a number/,
 * );
 * ```
 */
export function validatePipelineConfig(raw: unknown): PipelineConfig {
  const config = validateAgainst(SCHEMA, raw, "") as unknown as PipelineConfig;
  if (!config.meanflow.meanflow && config.meanflow.lambda === 0) {
    err(
      "meanflow.lambda",
      "must be > 0 when meanflow.meanflow is false (no loss left)",
      RangeError,
    );
  }
  return deepFreeze(config);
}

/**
 * Merges partial configs over a base (later ones win; nested mappings merge key by key, lists
 * and scalars replace) and validates the result.
 *
 * @param base A complete config, e.g. {@linkcode DEFAULT_CONFIG}.
 * @param patches Partial configs, e.g. a parsed preset, then a user file.
 * @returns The validated, frozen config.
 * @throws {TypeError | RangeError} If a patch names an unknown key or the result is invalid.
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, mergeConfig } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const c = mergeConfig(DEFAULT_CONFIG, { baseline: { epochs: 3 } });
 * assert.equal(c.baseline.epochs, 3);
 * assert.equal(c.baseline.lr, 0.1);
 * assert.throws(() => mergeConfig(DEFAULT_CONFIG, { basline: {} }), /"basline" is not a known key/);
 * ```
 */
export function mergeConfig(base: PipelineConfig, ...patches: unknown[]): PipelineConfig {
  let merged: unknown = base;
  for (const patch of patches) {
    if (patch === null || patch === undefined) continue;
    if (typeof patch !== "object" || Array.isArray(patch)) {
      err("(root)", `a config patch must be a mapping, got ${JSON.stringify(patch)}`);
    }
    merged = mergeInto(merged, patch, "");
  }
  return validatePipelineConfig(merged);
}

/**
 * Parses `--set` overrides (`key.path=value`, value read as YAML: `3`, `true`, `null`,
 * `[1, 2]`, `cifar100`) into a nested partial config.
 *
 * @param assignments Strings of the form `a.b.c=value`.
 * @returns A partial config for {@linkcode mergeConfig}.
 * @throws {TypeError} If an assignment has no `=` or an empty key.
 * @example
 * ```ts
 * import { parseOverrides } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseOverrides(["baseline.epochs=3", "incubate.stages=[1, 3]"]), {
 *   baseline: { epochs: 3 },
 *   incubate: { stages: [1, 3] },
 * });
 * ```
 */
export function parseOverrides(assignments: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of assignments) {
    const eq = a.indexOf("=");
    if (eq <= 0) {
      throw new TypeError(
        `Invalid override "${a}": expected key.path=value, e.g. baseline.epochs=3`,
      );
    }
    const path = a.slice(0, eq).trim().split(".");
    if (path.some((p) => p === "")) {
      throw new TypeError(`Invalid override "${a}": empty key segment`);
    }
    const value = yaml.load(a.slice(eq + 1));
    let node = out;
    for (const p of path.slice(0, -1)) {
      if (typeof node[p] !== "object" || node[p] === null) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value === undefined ? null : value;
  }
  return out;
}

/**
 * Parses YAML text into a partial config (the file's own keys; validation happens on merge).
 *
 * @param text YAML source.
 * @param source File name for error messages.
 * @returns The parsed mapping.
 * @throws {TypeError} If the YAML is invalid or not a mapping.
 * @example
 * ```ts
 * import { parseConfigYaml } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseConfigYaml("seed: 3\n", "x.yaml"), { seed: 3 });
 * ```
 */
export function parseConfigYaml(text: string, source: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = yaml.load(text);
  } catch (e) {
    throw new TypeError(`Cannot parse ${source} as YAML: ${(e as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`${source} must contain a YAML mapping of config keys`);
  }
  return parsed as Record<string, unknown>;
}
