/**
 * The configuration of a {@linkcode MeanFlowStage}: a typed object validated once at the edge
 * (unknown keys and wrong types are errors naming the key), resolved with defaults and frozen,
 * so that checkpoints can save it.
 *
 * @module
 */

/** How the modules of a two-module stage share the path from x1 (t = 1) to x0 (t = 0). */
export type ModuleSplit = "time" | "cascade";

/**
 * How the alignment halves the resolution when `stride` is 2: `"avgpool"` (2x2 average pool,
 * then the 1x1 convolution, as ResNet-D's shortcut: every input position reaches the output),
 * `"stride"` (the 1x1 convolution with stride 2: drops 3 of 4 positions) or `"space-to-depth"`
 * (each 2x2 block becomes 4x the channels, then the 1x1 convolution: 4x its weights).
 */
export type Downsample = "avgpool" | "stride" | "space-to-depth";

/** The downsampling modes, in documentation order. */
export const DOWNSAMPLE_MODES: readonly Downsample[] = Object.freeze([
  "avgpool",
  "stride",
  "space-to-depth",
]);

/** Configuration of a MeanFlow stage. Optional keys have the defaults documented here. */
export interface MeanFlowStageConfig {
  /** Channels of the stage input X(l-1). */
  readonly inChannels: number;
  /** Channels of the stage output X(l) (also the velocity networks' C). */
  readonly outChannels: number;
  /** The stage's resolution change: 1 or 2 (see `downsample` for how 2 is done). */
  readonly stride: number;
  /** How a stride of 2 is done (default `"avgpool"`; ignored at stride 1). */
  readonly downsample?: Downsample;
  /** Hidden width h of each velocity network. */
  readonly hidden: number;
  /** Number of MeanFlow modules (steps in one forward pass), each with its own network. */
  readonly modules: 1 | 2;
  /** Residual blocks per velocity network (default 1). */
  readonly blocks?: number;
  /** Width of each sinusoidal time embedding and of the time MLP (even, default 64). */
  readonly timeEmbedDim?: number;
  /** Largest angular frequency of the time embeddings (default 100). */
  readonly timeMaxFrequency?: number;
  /**
   * How modules share the path (default `"time"`): `"time"` splits [0, 1] into equal
   * sub-intervals, module k (0-based) covering [(M-1-k)/M, (M-k)/M] (module 0 takes t in [1/2, 1],
   * module 1 takes [0, 1/2]), each trained on its own part of the same path; `"cascade"` gives every
   * module the whole interval [0, 1], module k refining the one-step output of modules < k
   * towards X(l).
   */
  readonly moduleSplit?: ModuleSplit;
  /** Seed of the initialisation. */
  readonly seed: number;
}

/** A validated configuration with every default filled in. */
export type ResolvedStageConfig = Readonly<Required<MeanFlowStageConfig>>;

/** Defaults of the optional keys. */
export const STAGE_CONFIG_DEFAULTS: Readonly<{
  blocks: number;
  timeEmbedDim: number;
  timeMaxFrequency: number;
  moduleSplit: ModuleSplit;
  downsample: Downsample;
}> = Object.freeze({
  blocks: 1,
  timeEmbedDim: 64,
  timeMaxFrequency: 100,
  moduleSplit: "time",
  downsample: "avgpool",
});

const INT_KEYS = ["inChannels", "outChannels", "stride", "hidden", "blocks", "timeEmbedDim"];
const ALL_KEYS = new Set([
  ...INT_KEYS,
  "modules",
  "timeMaxFrequency",
  "moduleSplit",
  "downsample",
  "seed",
]);
const REQUIRED = ["inChannels", "outChannels", "stride", "hidden", "modules", "seed"];

/**
 * Validates a stage configuration and fills in the defaults.
 *
 * @param config The configuration, e.g. parsed from YAML or a checkpoint.
 * @returns A frozen, fully resolved copy.
 * @throws {TypeError} If `config` is not an object, a key is unknown or missing, or has the
 * wrong type; the message names the key.
 * @throws {RangeError} If a value is out of range, naming the key.
 * @example
 * ```ts
 * import { validateStageConfig } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * const c = validateStageConfig({
 *   inChannels: 8, outChannels: 16, stride: 2, hidden: 32, modules: 1, seed: 0,
 * });
 * assert.deepEqual(c.blocks, 1);
 * assert.ok(Object.isFrozen(c));
 * assert.throws(() => validateStageConfig({ ...c, hiden: 3 }), /hiden/);
 * ```
 */
export function validateStageConfig(config: unknown): ResolvedStageConfig {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new TypeError(`MeanFlowStage config must be an object, got ${JSON.stringify(config)}`);
  }
  const c = config as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!ALL_KEYS.has(key)) {
      throw new TypeError(
        `MeanFlowStage config: unknown key "${key}"; allowed keys are ${[...ALL_KEYS].join(", ")}`,
      );
    }
  }
  for (const key of REQUIRED) {
    if (c[key] === undefined) {
      throw new TypeError(`MeanFlowStage config: missing required key "${key}"`);
    }
  }
  const merged: Record<string, unknown> = { ...STAGE_CONFIG_DEFAULTS };
  for (const [k, v] of Object.entries(c)) if (v !== undefined) merged[k] = v;
  for (const key of INT_KEYS) {
    const v = merged[key];
    if (typeof v !== "number") {
      throw new TypeError(`MeanFlowStage config: "${key}" must be a number, got ${typeof v}`);
    }
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`MeanFlowStage config: "${key}" must be a positive integer, got ${v}`);
    }
  }
  if (merged.modules !== 1 && merged.modules !== 2) {
    throw new RangeError(
      `MeanFlowStage config: "modules" must be 1 or 2, got ${JSON.stringify(merged.modules)}`,
    );
  }
  if ((merged.timeEmbedDim as number) % 2 !== 0) {
    throw new RangeError(
      `MeanFlowStage config: "timeEmbedDim" must be even, got ${merged.timeEmbedDim}`,
    );
  }
  const maxF = merged.timeMaxFrequency;
  if (typeof maxF !== "number") {
    throw new TypeError(
      `MeanFlowStage config: "timeMaxFrequency" must be a number, got ${typeof maxF}`,
    );
  }
  if (!(maxF >= 1) || !Number.isFinite(maxF)) {
    throw new RangeError(
      `MeanFlowStage config: "timeMaxFrequency" must be a finite number >= 1, got ${maxF}`,
    );
  }
  if (merged.moduleSplit !== "time" && merged.moduleSplit !== "cascade") {
    throw new RangeError(
      `MeanFlowStage config: "moduleSplit" must be "time" or "cascade", got ${
        JSON.stringify(merged.moduleSplit)
      }`,
    );
  }
  if (!DOWNSAMPLE_MODES.includes(merged.downsample as Downsample)) {
    throw new RangeError(
      `MeanFlowStage config: "downsample" must be one of ${DOWNSAMPLE_MODES.join(", ")}, got ${
        JSON.stringify(merged.downsample)
      }`,
    );
  }
  if (merged.stride !== 1 && merged.stride !== 2) {
    throw new RangeError(`MeanFlowStage config: "stride" must be 1 or 2, got ${merged.stride}`);
  }
  if (typeof merged.seed !== "number" || !Number.isFinite(merged.seed)) {
    throw new TypeError(
      `MeanFlowStage config: "seed" must be a finite number, got ${JSON.stringify(merged.seed)}`,
    );
  }
  return Object.freeze({
    inChannels: merged.inChannels as number,
    outChannels: merged.outChannels as number,
    stride: merged.stride as number,
    hidden: merged.hidden as number,
    modules: merged.modules as 1 | 2,
    blocks: merged.blocks as number,
    timeEmbedDim: merged.timeEmbedDim as number,
    timeMaxFrequency: maxF,
    moduleSplit: merged.moduleSplit as ModuleSplit,
    downsample: merged.downsample as Downsample,
    seed: merged.seed,
  });
}

/**
 * Input channels of the alignment's 1x1 convolution: 4x the stage's with `"space-to-depth"` at
 * stride 2, else the stage's.
 *
 * @param config A resolved stage config.
 * @returns The convolution's input channels.
 * @example
 * ```ts
 * import { alignInChannels, validateStageConfig } from "@mfi/flows";
 * import assert from "node:assert/strict";
 * const c = { inChannels: 8, outChannels: 16, stride: 2, hidden: 4, modules: 1, seed: 0 } as const;
 * assert.equal(alignInChannels(validateStageConfig(c)), 8);
 * assert.equal(alignInChannels(validateStageConfig({ ...c, downsample: "space-to-depth" })), 32);
 * ```
 */
export function alignInChannels(config: ResolvedStageConfig): number {
  return config.stride === 2 && config.downsample === "space-to-depth"
    ? 4 * config.inChannels
    : config.inChannels;
}
