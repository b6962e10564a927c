/**
 * The one ResNet builder: {@linkcode buildResNet} turns a validated {@linkcode ResNetConfig}
 * (architecture data, classes, width multiplier, seed) into a {@linkcode ResNet}.
 *
 * @module
 */
import { deriveSeed } from "@mfi/core";
import {
  blockExpansion,
  type ResNetArch,
  type ResNetArchName,
  resolveArch,
  scaleChannels,
} from "./arch.ts";
import { ClassifierHead } from "./head.ts";
import { residualStage } from "./stage.ts";
import { StagedModel } from "./staged_model.ts";
import { ResNetStem } from "./stem.ts";

/** A validated, frozen ResNet config; JSON-serialisable, saved into checkpoints. */
export interface ResNetConfig {
  /** Architecture name or data. */
  readonly arch: ResNetArchName | ResNetArch;
  /** Number of classes (10 for CIFAR-10, 100 for CIFAR-100). */
  readonly classes: number;
  /** Width multiplier, see {@linkcode scaleChannels} (1 = the paper's widths). */
  readonly width: number;
  /** Base seed of the initialisation. */
  readonly seed: number;
}

/** The input of {@linkcode buildResNet}: a config whose `width` defaults to 1. */
export type ResNetConfigInput = Omit<ResNetConfig, "width"> & { readonly width?: number };

const CONFIG_KEYS = ["arch", "classes", "width", "seed"] as const;

/**
 * Validates a ResNet config (e.g. parsed from JSON or a checkpoint).
 *
 * @param raw The candidate config; `width` may be omitted (default 1).
 * @returns A frozen copy with every key present.
 * @throws {TypeError} On an unknown key, a missing key or a wrong type; the message names the key.
 * @throws {RangeError} On an out-of-range value; the message names the key.
 * @example
 * ```ts
 * import { validateResNetConfig } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * const config = validateResNetConfig({ arch: "resnet50", classes: 10, seed: 1 });
 * assert.equal(config.width, 1);
 * assert.ok(Object.isFrozen(config));
 * assert.throws(() => validateResNetConfig({ arch: "resnet50", classes: 10, seed: 1, depth: 3 }), /depth/);
 * ```
 */
export function validateResNetConfig(raw: unknown): ResNetConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError(`Invalid ResNet config: expected an object, got ${JSON.stringify(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new TypeError(
        `Invalid ResNet config: unknown key "${key}"; allowed keys are ${CONFIG_KEYS.join(", ")}`,
      );
    }
  }
  for (const key of ["arch", "classes", "seed"]) {
    if (record[key] === undefined) {
      throw new TypeError(`Invalid ResNet config: "${key}" is missing`);
    }
  }
  const arch = typeof record.arch === "string" ? record.arch : resolveArch(record.arch);
  resolveArch(arch);
  const { classes, seed } = record;
  const width = record.width ?? 1;
  if (typeof classes !== "number") {
    throw new TypeError(
      `Invalid ResNet config: "classes" must be a number, got ${JSON.stringify(classes)}`,
    );
  }
  if (!Number.isInteger(classes) || classes < 1) {
    throw new RangeError(
      `Invalid ResNet config: "classes" must be a positive integer, got ${classes}`,
    );
  }
  if (typeof width !== "number") {
    throw new TypeError(
      `Invalid ResNet config: "width" must be a number, got ${JSON.stringify(width)}`,
    );
  }
  if (!Number.isFinite(width) || width <= 0) {
    throw new RangeError(`Invalid ResNet config: "width" must be a positive number, got ${width}`);
  }
  if (typeof seed !== "number") {
    throw new TypeError(
      `Invalid ResNet config: "seed" must be a number, got ${JSON.stringify(seed)}`,
    );
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(
      `Invalid ResNet config: "seed" must be an integer in [0, 2^32), got ${seed}`,
    );
  }
  return Object.freeze({ arch: arch as ResNetArchName | ResNetArch, classes, width, seed });
}

/** A CIFAR ResNet: a {@linkcode StagedModel} that remembers the config it was built from. */
export class ResNet extends StagedModel {
  /** The validated config (rebuild with `buildResNet(model.config)`). */
  readonly config: ResNetConfig;
  /** The resolved architecture data. */
  readonly arch: ResNetArch;

  /**
   * Prefer {@linkcode buildResNet}.
   *
   * @param config A config, validated here.
   * @throws {TypeError} On an invalid config.
   * @throws {RangeError} On an invalid config.
   */
  constructor(config: ResNetConfigInput) {
    const c = validateResNetConfig(config);
    const arch = resolveArch(c.arch);
    const stem = new ResNetStem({
      inChannels: 3,
      outChannels: scaleChannels(arch.stem, c.width),
      seed: deriveSeed(c.seed, "stem"),
    });
    const stages = arch.depths.map((_, i) =>
      residualStage(arch, i, { width: c.width, seed: c.seed })
    );
    const head = new ClassifierHead({
      inChannels: scaleChannels(arch.widths[arch.widths.length - 1], c.width) *
        blockExpansion(arch.block),
      classes: c.classes,
      seed: deriveSeed(c.seed, "head"),
    });
    super({ stem, stages, head });
    this.config = c;
    this.arch = arch;
  }
}

/**
 * Builds a CIFAR ResNet (kuangliu layout: 3x3 stem, no max-pool, projection shortcuts, global
 * average pool, linear head) from architecture data. Names: `stem.conv.weight`,
 * `stages.<i>.blocks.<j>.conv1.weight`, `stages.<i>.blocks.0.shortcut.bn.running_mean`,
 * `head.fc.weight`, ... Every layer's seed derives from `config.seed` and its position (so a
 * model that swaps stages in with {@linkcode StagedModel.withStage} keeps the same weights for
 * the parts it keeps, and {@linkcode residualStage} alone rebuilds one stage): the stem uses
 * `deriveSeed(seed, "stem")`, block `j` of stage `i` `deriveSeed(seed, "stages", i, "blocks", j)`
 * (see {@linkcode residualStage}), the head `deriveSeed(seed, "head")`; inside a part, each layer
 * uses `deriveSeed(partSeed, layerName)` (`"conv"`, `"conv1"`, `"shortcut"` then `"conv"`, `"fc"`).
 *
 * @param config Architecture, classes, optional width multiplier (default 1), seed.
 * @returns The model (variables allocated; free with `disposeModule`).
 * @throws {TypeError} On an invalid config (the message names the key).
 * @throws {RangeError} On an invalid config (the message names the key).
 * @example
 * ```ts
 * import { buildResNet } from "@mfi/resnet";
 * import { countParameters, disposeModule } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const model = buildResNet({ arch: "resnet50", classes: 100, width: 0.25, seed: 0 });
 * assert.deepEqual(model.stageInfos().map((s) => s.outChannels), [64, 128, 256, 512]);
 * const y = tf.tidy(() => model.apply(tf.zeros([1, 8, 8, 3]), { training: false }));
 * assert.deepEqual(y.shape, [1, 100]);
 * assert.ok(countParameters(model) > 0);
 * y.dispose();
 * disposeModule(model);
 * ```
 */
export function buildResNet(config: ResNetConfigInput): ResNet {
  return new ResNet(config);
}
