/**
 * Architectures are data: a JSON-serialisable {@linkcode ModelSpec} describes every model this
 * project trains (the baseline ResNet, the meta model of MeanFlow stages, incubation hybrids and
 * MFI-ResNet), is validated once at the edge, saved into checkpoints, and rebuilt with
 * {@linkcode buildModel}. Parameter counts come from the spec alone
 * ({@linkcode countSpecParameters}), without allocating a tensor.
 *
 * @module
 */
import { deriveSeed, disposeModule } from "@mfi/core";
import {
  buildResNet,
  countResNetParameters,
  residualStageInfo,
  type ResNetArch,
  type ResNetArchName,
  resolveArch,
  type StagedModel,
} from "@mfi/resnet";
import {
  countMeanFlowParameters,
  meanFlowStage,
  type MeanFlowStageSpecConfig,
  validateMeanFlowConfig,
} from "./_flows.ts";
import { tidyBuild } from "./_tidy.ts";

export type { MeanFlowStageSpecConfig } from "./_flows.ts";

/**
 * Current spec format tag; bump when the meaning of a field changes. Format 2 added the MeanFlow
 * stages' `downsample`; a format-1 spec is read as `downsample: "stride"`, what it meant then.
 */
export const MODEL_SPEC_FORMAT = "mfi-model-spec/2";

/** The format-1 tag (MeanFlow alignments always strided). */
const MODEL_SPEC_FORMAT_1 = "mfi-model-spec/1";

/** What kind of model a spec describes (checked against its stages). */
export type ModelFamily = "resnet" | "meta" | "hybrid" | "mfi-resnet";

/** A stage made of the architecture's residual blocks (depth, widths and stride from `arch`). */
export interface ResidualStageSpec {
  /** Discriminator. */
  readonly kind: "residual";
}

/** A stage replaced by a MeanFlow stage (alignment + MeanFlow modules), see `@mfi/flows`. */
export interface MeanFlowStageSpec {
  /** Discriminator. */
  readonly kind: "meanflow";
  /** The MeanFlow stage's config (its channels and stride must match the residual stage's). */
  readonly config: MeanFlowStageSpecConfig;
}

/** One stage of a model. */
export type StageSpec = ResidualStageSpec | MeanFlowStageSpec;

/**
 * A model as data: the ResNet stem of `arch`, one entry per stage, and the linear head.
 * Families: `resnet` (all residual), `meta` (all MeanFlow), `hybrid` (a meta model with some
 * stages residual, during incubation), `mfi-resnet` (the assembled result; any mix).
 */
export interface ModelSpec {
  /** Always {@linkcode MODEL_SPEC_FORMAT}. */
  readonly format: typeof MODEL_SPEC_FORMAT;
  /** What the model is. */
  readonly family: ModelFamily;
  /** The ResNet layout the stem, residual stages and head come from. */
  readonly arch: ResNetArchName | ResNetArch;
  /** Number of classes. */
  readonly classes: number;
  /** Width multiplier of the ResNet (1 = the paper's widths). */
  readonly width: number;
  /** One entry per stage of `arch`. */
  readonly stages: ReadonlyArray<StageSpec>;
}

/** Parameter counts of a spec, per part. */
export interface SpecParameterCount {
  /** The whole model. */
  readonly total: number;
  /** The stem. */
  readonly stem: number;
  /** Each stage, in order. */
  readonly stages: readonly number[];
  /** The head. */
  readonly head: number;
}

const SPEC_KEYS = ["format", "family", "arch", "classes", "width", "stages"] as const;
const FAMILIES: readonly ModelFamily[] = ["resnet", "meta", "hybrid", "mfi-resnet"];

function fail(key: string, message: string, Err: typeof TypeError = TypeError): never {
  throw new Err(`Invalid model spec: ${key} ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A format-1 spec as format 2: its MeanFlow alignments were strided 1x1 convolutions. */
function migrateFormat1(raw: Record<string, unknown>): Record<string, unknown> {
  const stages = Array.isArray(raw.stages)
    ? raw.stages.map((s: unknown) =>
      isRecord(s) && s.kind === "meanflow" && isRecord(s.config) && !("downsample" in s.config)
        ? { ...s, config: { ...s.config, downsample: "stride" } }
        : s
    )
    : raw.stages;
  return { ...raw, format: MODEL_SPEC_FORMAT, stages };
}

/**
 * Validates an untrusted value (parsed JSON, a checkpoint's metadata) as a {@linkcode ModelSpec}
 * and returns a frozen copy. Unknown keys and wrong types are errors naming the key; a MeanFlow
 * stage's channels and stride must match the residual stage it replaces. A format-1 spec (written
 * before MeanFlow stages had `downsample`) is migrated: its stages get `downsample: "stride"`.
 *
 * @param raw The candidate spec.
 * @returns The validated, deeply frozen spec.
 * @throws {TypeError} On a missing or unknown key or a wrong type.
 * @throws {RangeError} On an out-of-range value or mismatched stage shapes.
 * @example
 * ```ts
 * import { resnetSpec, validateModelSpec } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const spec = validateModelSpec(JSON.parse(JSON.stringify(resnetSpec("resnet18", 10, 0.25))));
 * assert.equal(spec.stages.length, 4);
 * assert.throws(() => validateModelSpec({ ...spec, colour: "red" }), /unknown key "colour"/);
 * ```
 */
export function validateModelSpec(raw: unknown): ModelSpec {
  if (!isRecord(raw)) fail("(root)", `must be an object, got ${JSON.stringify(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!(SPEC_KEYS as readonly string[]).includes(key)) {
      fail(`unknown key "${key}";`, `allowed keys are ${SPEC_KEYS.join(", ")}`);
    }
  }
  for (const key of SPEC_KEYS) {
    if (raw[key] === undefined) fail(`"${key}"`, "is missing");
  }
  if (raw.format === MODEL_SPEC_FORMAT_1) return validateModelSpec(migrateFormat1(raw));
  if (raw.format !== MODEL_SPEC_FORMAT) {
    fail(
      '"format"',
      `must be "${MODEL_SPEC_FORMAT}" (or the older "${MODEL_SPEC_FORMAT_1}"), got ${
        JSON.stringify(raw.format)
      }; this file was written by another version of the project`,
    );
  }
  if (!FAMILIES.includes(raw.family as ModelFamily)) {
    fail('"family"', `must be one of ${FAMILIES.join(", ")}, got ${JSON.stringify(raw.family)}`);
  }
  const family = raw.family as ModelFamily;
  const archValue = typeof raw.arch === "string" ? raw.arch : resolveArch(raw.arch, "arch");
  const arch = resolveArch(archValue, "arch");
  if (typeof raw.classes !== "number") {
    fail('"classes"', `must be a number, got ${JSON.stringify(raw.classes)}`);
  }
  if (!Number.isInteger(raw.classes) || raw.classes < 1) {
    fail('"classes"', `must be a positive integer, got ${raw.classes}`, RangeError);
  }
  if (typeof raw.width !== "number") {
    fail('"width"', `must be a number, got ${JSON.stringify(raw.width)}`);
  }
  if (!Number.isFinite(raw.width) || raw.width <= 0) {
    fail('"width"', `must be a positive number, got ${raw.width}`, RangeError);
  }
  const width = raw.width;
  if (!Array.isArray(raw.stages)) {
    fail('"stages"', `must be an array, got ${JSON.stringify(raw.stages)}`);
  }
  if (raw.stages.length !== arch.depths.length) {
    fail(
      '"stages"',
      `must have one entry per stage of the architecture (${arch.depths.length}), got ${raw.stages.length}`,
      RangeError,
    );
  }
  const stages = raw.stages.map((s: unknown, i: number): StageSpec => {
    const key = `"stages[${i}]"`;
    if (!isRecord(s)) fail(key, `must be an object, got ${JSON.stringify(s)}`);
    if (s.kind === "residual") {
      const extra = Object.keys(s).filter((k) => k !== "kind");
      if (extra.length) {
        fail(`unknown key "stages[${i}].${extra[0]}";`, "a residual stage has only kind");
      }
      return Object.freeze({ kind: "residual" });
    }
    if (s.kind === "meanflow") {
      const extra = Object.keys(s).filter((k) => k !== "kind" && k !== "config");
      if (extra.length) {
        fail(`unknown key "stages[${i}].${extra[0]}";`, "a meanflow stage has kind and config");
      }
      const config = validateMeanFlowConfig(s.config, `stages[${i}].config`);
      const info = residualStageInfo(arch, i, width);
      for (const k of ["inChannels", "outChannels", "stride"] as const) {
        if (config[k] !== info[k]) {
          fail(
            `"stages[${i}].config.${k}"`,
            `must match the residual stage it replaces (${info[k]}), got ${config[k]}`,
            RangeError,
          );
        }
      }
      return Object.freeze({ kind: "meanflow", config });
    }
    return fail(
      `"stages[${i}].kind"`,
      `must be "residual" or "meanflow", got ${JSON.stringify(s.kind)}`,
    );
  });
  const kinds = stages.map((s) => s.kind);
  if (family === "resnet" && kinds.some((k) => k !== "residual")) {
    fail('"family"', `"resnet" needs every stage residual, got ${kinds.join(", ")}`, RangeError);
  }
  if (family === "meta" && kinds.some((k) => k !== "meanflow")) {
    fail('"family"', `"meta" needs every stage meanflow, got ${kinds.join(", ")}`, RangeError);
  }
  return Object.freeze({
    format: MODEL_SPEC_FORMAT,
    family,
    arch: typeof archValue === "string" ? archValue as ResNetArchName : arch,
    classes: raw.classes,
    width,
    stages: Object.freeze(stages),
  });
}

/**
 * The spec of a baseline CIFAR ResNet.
 *
 * @param arch Architecture name or data.
 * @param classes Number of classes.
 * @param width Width multiplier (default 1).
 * @returns The validated spec (every stage residual).
 * @throws {TypeError | RangeError} On an invalid architecture, class count or width.
 * @example
 * ```ts
 * import { countSpecParameters, resnetSpec } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * assert.equal(countSpecParameters(resnetSpec("resnet50", 10)).total, 23_520_842);
 * ```
 */
export function resnetSpec(
  arch: ResNetArchName | ResNetArch,
  classes: number,
  width = 1,
): ModelSpec {
  const a = resolveArch(arch);
  return validateModelSpec({
    format: MODEL_SPEC_FORMAT,
    family: "resnet",
    arch,
    classes,
    width,
    stages: a.depths.map(() => ({ kind: "residual" })),
  });
}

/**
 * Replaces stages of a spec: `replaceStages(spec, { 3: { kind: "meanflow", config } }, "mfi-resnet")`.
 *
 * @param spec The spec to start from.
 * @param stages New stage specs by 0-based index.
 * @param family The family of the result.
 * @returns The validated new spec.
 * @throws {TypeError | RangeError} If an index is out of range or the result is invalid.
 * @example
 * ```ts
 * import { replaceStages, resnetSpec } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const base = resnetSpec("resnet18", 10, 0.25);
 * assert.throws(() => replaceStages(base, { 7: { kind: "residual" } }, "hybrid"), /stage 7/);
 * ```
 */
export function replaceStages(
  spec: ModelSpec,
  stages: Readonly<Record<number, StageSpec>>,
  family: ModelFamily,
): ModelSpec {
  const next = [...spec.stages];
  for (const [key, stage] of Object.entries(stages)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= next.length) {
      throw new RangeError(
        `Cannot replace stage ${key}: the spec has stages 0..${next.length - 1}`,
      );
    }
    next[i] = stage;
  }
  return validateModelSpec({ ...spec, family, stages: next });
}

/**
 * Counts a spec's parameters without allocating anything (BN running statistics are buffers,
 * not parameters).
 *
 * @param spec A valid spec.
 * @returns Counts of the whole model and of each part.
 * @example
 * ```ts
 * import { countSpecParameters, resnetSpec } from "@mfi/incubation";
 * import assert from "node:assert/strict";
 * const c = countSpecParameters(resnetSpec("resnet34", 100));
 * assert.equal(c.total, 21_328_292);
 * assert.equal(c.head, 51_300);
 * ```
 */
export function countSpecParameters(spec: ModelSpec): SpecParameterCount {
  const base = countResNetParameters(spec.arch, { classes: spec.classes, width: spec.width });
  const { stem, head } = base;
  const stages = spec.stages.map((s, i) =>
    s.kind === "residual" ? base.stages[i] : countMeanFlowParameters(s.config)
  );
  return Object.freeze({
    total: stem + head + stages.reduce((a, b) => a + b, 0),
    stem,
    stages: Object.freeze(stages),
    head,
  });
}

/** Options of {@linkcode buildModel}. */
export interface BuildModelOptions {
  /**
   * Base seed. Residual parts use the seeds of `buildResNet` (`deriveSeed(seed, "stem")`, ...),
   * so a residual spec built with seed `s` equals `buildResNet({ ..., seed: s })`; MeanFlow stage
   * `i` uses `deriveSeed(seed, "stages", i, "meanflow")`.
   */
  readonly seed: number;
}

const SPECS = new WeakMap<StagedModel, ModelSpec>();

/**
 * Builds the model a spec describes: `buildResNet` of the spec's architecture, classes, width and
 * seed, then `withStage` for each MeanFlow stage (the residual stage it replaces is disposed).
 *
 * @param spec The spec (validated again here).
 * @param options The base seed.
 * @returns A fresh {@linkcode StagedModel}; {@linkcode specOf} returns its spec.
 * @throws {TypeError | RangeError} If the spec is invalid.
 * @example
 * ```ts
 * import { buildModel, resnetSpec, specOf } from "@mfi/incubation";
 * import { countParameters, disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const spec = resnetSpec("resnet18", 10, 1 / 16);
 * const model = buildModel(spec, { seed: 1 });
 * assert.equal(specOf(model), spec);
 * const logits = tf.tidy(() => model.apply(tf.zeros([2, 32, 32, 3]), { training: false }));
 * assert.deepEqual(logits.shape, [2, 10]);
 * logits.dispose();
 * disposeModule(model);
 * ```
 */
export function buildModel(spec: ModelSpec, options: BuildModelOptions): StagedModel {
  // Layers copy their initial values into variables; tidy frees the copies (variables survive).
  const model = tidyBuild(() => buildUntidy(spec, options));
  SPECS.set(model, spec);
  return model;
}

function buildUntidy(spec: ModelSpec, options: BuildModelOptions): StagedModel {
  const s = validateModelSpec(spec);
  const seed = options.seed;
  // One builder: the ResNet of the spec's arch, then each MeanFlow stage swapped in. The residual
  // stage a MeanFlow stage replaces is freed at once (its variables belong to no model).
  let model: StagedModel = buildResNet({ arch: s.arch, classes: s.classes, width: s.width, seed });
  s.stages.forEach((st, i) => {
    if (st.kind !== "meanflow") return;
    const replaced = model.stages[i].module;
    const stage = meanFlowStage(st.config, deriveSeed(seed, "stages", i, "meanflow"));
    model = model.withStage(i, stage, { kind: "meanflow" });
    disposeModule(replaced);
  });
  return model;
}

/**
 * The spec a model was built from.
 *
 * @param model A model returned by {@linkcode buildModel}.
 * @returns Its spec.
 * @throws {Error} If the model was not built by {@linkcode buildModel}.
 * @example
 * ```ts
 * import { buildModel, resnetSpec, specOf } from "@mfi/incubation";
 * import { disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const model = buildModel(resnetSpec("resnet18", 10, 1 / 16), { seed: 0 });
 * assert.equal(specOf(model).family, "resnet");
 * disposeModule(model);
 * ```
 */
export function specOf(model: StagedModel): ModelSpec {
  const spec = SPECS.get(model);
  if (spec === undefined) {
    throw new Error(
      "specOf: this model was not built by buildModel; build models from a ModelSpec to keep their architecture as data",
    );
  }
  return spec;
}
