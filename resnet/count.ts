/**
 * Parameter counts of a ResNet from its architecture data, without allocating any tensor (a
 * full-width ResNet-101 would take 170 MB). Batch-norm running statistics are buffers, not
 * parameters, as in PyTorch.
 *
 * @module
 */
import {
  blockExpansion,
  type ResNetArch,
  type ResNetArchName,
  resolveArch,
  scaleChannels,
} from "./arch.ts";

/** Parameter counts of a staged model: total = stem + sum(stages) + head. */
export interface ParameterReport {
  /** All trainable parameters. */
  readonly total: number;
  /** The stem's parameters. */
  readonly stem: number;
  /** Each stage's parameters, stage 0 first. */
  readonly stages: readonly number[];
  /** The head's parameters. */
  readonly head: number;
}

/** Options of {@linkcode countResNetParameters}. */
export interface CountOptions {
  /** Number of classes. */
  readonly classes: number;
  /** Width multiplier (default 1). */
  readonly width?: number;
}

const conv = (k: number, cin: number, cout: number): number => k * k * cin * cout;
const bn = (c: number): number => 2 * c;

/**
 * Counts a ResNet's parameters from architecture data; equals `countParameters(buildResNet(...))`.
 *
 * @param arch Architecture name or data.
 * @param options Classes and width multiplier.
 * @returns Total, stem, per-stage and head counts.
 * @throws {TypeError} If `arch` is invalid.
 * @throws {RangeError} If `classes` is not a positive integer or `width` is not positive.
 * @example
 * ```ts
 * import { countResNetParameters } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * const r = countResNetParameters("resnet50", { classes: 10 });
 * assert.equal(r.total, 23_520_842);
 * assert.equal(r.stages[3], 14_964_736);
 * ```
 */
export function countResNetParameters(
  arch: ResNetArchName | ResNetArch,
  options: CountOptions,
): ParameterReport {
  const a = resolveArch(arch);
  const { classes } = options;
  if (!Number.isInteger(classes) || classes < 1) {
    throw new RangeError(
      `Cannot count parameters: classes must be a positive integer, got ${classes}`,
    );
  }
  const width = options.width ?? 1;
  const e = blockExpansion(a.block);
  const stemOut = scaleChannels(a.stem, width);
  const stem = conv(3, 3, stemOut) + bn(stemOut);
  let cin = stemOut;
  const stages = a.depths.map((depth, i) => {
    const w = scaleChannels(a.widths[i], width);
    const out = w * e;
    let n = 0;
    for (let j = 0; j < depth; j++) {
      const stride = j === 0 ? a.strides[i] : 1;
      n += a.block === "bottleneck"
        ? conv(1, cin, w) + bn(w) + conv(3, w, w) + bn(w) + conv(1, w, out) + bn(out)
        : conv(3, cin, w) + bn(w) + conv(3, w, w) + bn(w);
      if (stride !== 1 || cin !== out) n += conv(1, cin, out) + bn(out);
      cin = out;
    }
    return n;
  });
  const head = cin * classes + classes;
  const total = stem + stages.reduce((s, n) => s + n, 0) + head;
  return Object.freeze({ total, stem, stages: Object.freeze(stages), head });
}
