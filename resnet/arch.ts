/**
 * CIFAR ResNet architectures as data (timm style): one builder reads these records, nothing is
 * registered by import side effect. Also the width multiplier's channel rounding rule.
 *
 * @module
 */

/** Residual block types: `basic` (two 3x3 convs) and `bottleneck` (1x1, 3x3, 1x1; expansion 4). */
export type BlockKind = "basic" | "bottleneck";

/** A CIFAR ResNet, described by data. Channel counts are at width multiplier 1. */
export interface ResNetArch {
  /** Block type of every stage. */
  readonly block: BlockKind;
  /** Blocks per stage, e.g. `[3, 4, 6, 3]`. */
  readonly depths: readonly number[];
  /** Stage widths (a bottleneck's inner width; its output is `4 *` this), e.g. `[64, 128, 256, 512]`. */
  readonly widths: readonly number[];
  /** Stride of each stage's first block, e.g. `[1, 2, 2, 2]`. */
  readonly strides: readonly number[];
  /** Output channels of the 3x3 stem convolution. */
  readonly stem: number;
}

const CIFAR_WIDTHS: readonly number[] = Object.freeze([64, 128, 256, 512]);
const CIFAR_STRIDES: readonly number[] = Object.freeze([1, 2, 2, 2]);

/** ResNet-18, BasicBlock, depths 2-2-2-2 (11,173,962 parameters on CIFAR-10). */
export const resnet18: ResNetArch = Object.freeze({
  block: "basic",
  depths: Object.freeze([2, 2, 2, 2]),
  widths: CIFAR_WIDTHS,
  strides: CIFAR_STRIDES,
  stem: 64,
});

/** ResNet-34, BasicBlock, depths 3-4-6-3 (21,282,122 parameters on CIFAR-10). */
export const resnet34: ResNetArch = Object.freeze({
  block: "basic",
  depths: Object.freeze([3, 4, 6, 3]),
  widths: CIFAR_WIDTHS,
  strides: CIFAR_STRIDES,
  stem: 64,
});

/** ResNet-50, Bottleneck, depths 3-4-6-3 (23,520,842 parameters on CIFAR-10). */
export const resnet50: ResNetArch = Object.freeze({
  block: "bottleneck",
  depths: Object.freeze([3, 4, 6, 3]),
  widths: CIFAR_WIDTHS,
  strides: CIFAR_STRIDES,
  stem: 64,
});

/** ResNet-101, Bottleneck, depths 3-4-23-3 (42,512,970 parameters on CIFAR-10). */
export const resnet101: ResNetArch = Object.freeze({
  block: "bottleneck",
  depths: Object.freeze([3, 4, 23, 3]),
  widths: CIFAR_WIDTHS,
  strides: CIFAR_STRIDES,
  stem: 64,
});

/** Names of the predefined architectures. */
export type ResNetArchName = "resnet18" | "resnet34" | "resnet50" | "resnet101";

/** The predefined architectures by name (a plain lookup table). */
export const RESNET_ARCHS: Readonly<Record<ResNetArchName, ResNetArch>> = Object.freeze({
  resnet18,
  resnet34,
  resnet50,
  resnet101,
});

/**
 * Channel expansion of a block's output over its width.
 *
 * @param kind The block type.
 * @returns 1 for `basic`, 4 for `bottleneck`.
 * @example
 * ```ts
 * import { blockExpansion } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * assert.equal(blockExpansion("bottleneck"), 4);
 * ```
 */
export function blockExpansion(kind: BlockKind): number {
  return kind === "bottleneck" ? 4 : 1;
}

/**
 * Scales a channel count by the width multiplier: `max(1, round(channels * width))`, rounding
 * half away from zero. A bottleneck's output is `4 *` its scaled width (the expansion is applied
 * after rounding), so width 0.25 gives 16-32-64-128 (bottleneck outputs 64-128-256-512) and a
 * 16-channel stem; width 1/16 gives 4-8-16-32 and a 4-channel stem.
 *
 * @param channels Channels at width 1.
 * @param width The multiplier, > 0.
 * @returns The scaled channel count, at least 1.
 * @throws {RangeError} If `width` is not a positive finite number.
 * @example
 * ```ts
 * import { scaleChannels } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * assert.equal(scaleChannels(64, 0.25), 16);
 * assert.equal(scaleChannels(64, 0.3), 19);
 * assert.equal(scaleChannels(64, 0.001), 1);
 * ```
 */
export function scaleChannels(channels: number, width: number): number {
  if (!(typeof width === "number" && Number.isFinite(width) && width > 0)) {
    throw new RangeError(`Cannot scale channels: width must be a positive number, got ${width}`);
  }
  return Math.max(1, Math.round(channels * width));
}

/**
 * Resolves an architecture given by name or as data, validating the data.
 *
 * @param arch A predefined name such as `"resnet50"`, or a {@linkcode ResNetArch}.
 * @param key The config key for error messages (default `"arch"`).
 * @returns The validated, frozen architecture.
 * @throws {TypeError} On an unknown name, an unknown key or a wrong type (the message names the key).
 * @throws {RangeError} On inconsistent lengths or non-positive values.
 * @example
 * ```ts
 * import { resolveArch, resnet50 } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * assert.deepEqual(resolveArch("resnet50"), resnet50);
 * assert.throws(() => resolveArch("resnet51"), /resnet51/);
 * ```
 */
export function resolveArch(arch: ResNetArchName | ResNetArch | unknown, key = "arch"): ResNetArch {
  if (typeof arch === "string") {
    const found = (RESNET_ARCHS as Record<string, ResNetArch>)[arch];
    if (found === undefined) {
      throw new TypeError(
        `Invalid ResNet config: ${key} "${arch}" is unknown; use one of ${
          Object.keys(RESNET_ARCHS).join(", ")
        } or give the architecture as data`,
      );
    }
    return found;
  }
  if (typeof arch !== "object" || arch === null || Array.isArray(arch)) {
    throw new TypeError(
      `Invalid ResNet config: ${key} must be an architecture name or an object, got ${
        JSON.stringify(arch)
      }`,
    );
  }
  const allowed = ["block", "depths", "widths", "strides", "stem"];
  const record = arch as Record<string, unknown>;
  for (const k of Object.keys(record)) {
    if (!allowed.includes(k)) {
      throw new TypeError(
        `Invalid ResNet config: unknown key ${key}.${k}; allowed keys are ${allowed.join(", ")}`,
      );
    }
  }
  for (const k of allowed) {
    if (!(k in record)) throw new TypeError(`Invalid ResNet config: ${key}.${k} is missing`);
  }
  if (record.block !== "basic" && record.block !== "bottleneck") {
    throw new TypeError(
      `Invalid ResNet config: ${key}.block must be "basic" or "bottleneck", got ${
        JSON.stringify(record.block)
      }`,
    );
  }
  const lists: Record<string, number[]> = {};
  for (const k of ["depths", "widths", "strides"]) {
    const v = record[k];
    if (!Array.isArray(v) || v.length === 0 || !v.every((d) => typeof d === "number")) {
      throw new TypeError(
        `Invalid ResNet config: ${key}.${k} must be a non-empty array of numbers, got ${
          JSON.stringify(v)
        }`,
      );
    }
    v.forEach((d, i) => {
      if (!Number.isInteger(d) || d < 1) {
        throw new RangeError(
          `Invalid ResNet config: ${key}.${k}[${i}] must be a positive integer, got ${d}`,
        );
      }
    });
    lists[k] = [...v];
  }
  if (lists.widths.length !== lists.depths.length || lists.strides.length !== lists.depths.length) {
    throw new RangeError(
      `Invalid ResNet config: ${key}.depths, ${key}.widths and ${key}.strides must have one entry per stage, got lengths ${lists.depths.length}, ${lists.widths.length}, ${lists.strides.length}`,
    );
  }
  if (typeof record.stem !== "number" || !Number.isInteger(record.stem) || record.stem < 1) {
    throw new TypeError(
      `Invalid ResNet config: ${key}.stem must be a positive integer, got ${
        JSON.stringify(record.stem)
      }`,
    );
  }
  return Object.freeze({
    block: record.block,
    depths: Object.freeze(lists.depths),
    widths: Object.freeze(lists.widths),
    strides: Object.freeze(lists.strides),
    stem: record.stem,
  });
}
