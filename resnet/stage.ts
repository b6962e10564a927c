/**
 * One stage of residual blocks, built from architecture data alone (so the pipeline can build
 * an incubated stage without building the whole network).
 *
 * @module
 */
import type { Tensor } from "@mfi/core";
import {
  type ApplyOptions,
  deriveSeed,
  type Module,
  type NamedVariables,
  prefixed,
} from "@mfi/core";
import {
  blockExpansion,
  type ResNetArch,
  type ResNetArchName,
  resolveArch,
  scaleChannels,
} from "./arch.ts";
import { BasicBlock, Bottleneck } from "./blocks.ts";
import type { StageInfo } from "./staged_model.ts";

/**
 * A sequence of residual blocks; variables `blocks.<j>.*`. Usually built by
 * {@linkcode residualStage}.
 *
 * @example
 * ```ts
 * import { BasicBlock, ResidualStage } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stage = new ResidualStage([
 *   new BasicBlock({ inChannels: 4, width: 8, stride: 2, seed: 0 }),
 *   new BasicBlock({ inChannels: 8, width: 8, stride: 1, seed: 1 }),
 * ]);
 * const y = tf.tidy(() => stage.apply(tf.ones([1, 8, 8, 4]), { training: false }));
 * assert.deepEqual(y.shape, [1, 4, 4, 8]);
 * assert.equal(stage.namedVariables().at(-1)![0], "blocks.1.bn2.running_var");
 * y.dispose();
 * ```
 */
export class ResidualStage implements Module {
  /** The blocks, first one carrying the stride and the projection shortcut. */
  readonly blocks: ReadonlyArray<BasicBlock | Bottleneck>;

  /**
   * Composes the blocks; their variables are used as they are, not copied.
   *
   * @param blocks The blocks in order (at least one).
   * @throws {RangeError} If `blocks` is empty.
   */
  constructor(blocks: ReadonlyArray<BasicBlock | Bottleneck>) {
    if (blocks.length === 0) {
      throw new RangeError("Cannot build ResidualStage: it needs at least one block");
    }
    this.blocks = Object.freeze([...blocks]);
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC input of the stage.
   * @param options Training or inference mode.
   * @returns NHWC output of the stage.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    let y = x;
    for (const block of this.blocks) y = block.apply(y, options);
    return y;
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `blocks.<j>.*` for each block.
   */
  namedVariables(): NamedVariables {
    return this.blocks.flatMap((b, j) => prefixed(`blocks.${j}`, b.namedVariables()));
  }
}

function checkIndex(arch: ResNetArch, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= arch.depths.length) {
    throw new RangeError(
      `Cannot build stage ${index}: the architecture has stages 0..${arch.depths.length - 1}`,
    );
  }
}

/**
 * The metadata of stage `index` of an architecture at a width multiplier.
 *
 * @param arch Architecture name or data.
 * @param index Stage index, 0-based.
 * @param width Width multiplier (see {@linkcode scaleChannels}).
 * @returns The stage's {@linkcode StageInfo} (name `stage<index + 1>`, kind = block type).
 * @throws {RangeError} If `index` is out of range or `width` is not positive.
 * @throws {TypeError} If `arch` is invalid.
 * @example
 * ```ts
 * import { residualStageInfo } from "@mfi/resnet";
 * import assert from "node:assert/strict";
 * const info = residualStageInfo("resnet50", 1, 0.25);
 * assert.deepEqual(info, {
 *   index: 1, name: "stage2", inChannels: 64, outChannels: 128, stride: 2, kind: "bottleneck",
 * });
 * ```
 */
export function residualStageInfo(
  arch: ResNetArchName | ResNetArch,
  index: number,
  width: number,
): StageInfo {
  const a = resolveArch(arch);
  checkIndex(a, index);
  const e = blockExpansion(a.block);
  const inChannels = index === 0
    ? scaleChannels(a.stem, width)
    : scaleChannels(a.widths[index - 1], width) * e;
  return {
    index,
    name: `stage${index + 1}`,
    inChannels,
    outChannels: scaleChannels(a.widths[index], width) * e,
    stride: a.strides[index],
    kind: a.block,
  };
}

/** Options of {@linkcode residualStage}. */
export interface ResidualStageOptions {
  /** Width multiplier (default 1). */
  readonly width?: number;
  /**
   * The model's base seed. Block `j` is seeded with `deriveSeed(seed, "stages", index, "blocks", j)`,
   * so the stage equals stage `index` of `buildResNet` with the same seed.
   */
  readonly seed: number;
}

/**
 * Builds stage `index` of a ResNet: `depths[index]` blocks, the first with the stage's stride and
 * (where the shape changes) a projection shortcut.
 *
 * @param arch Architecture name or data.
 * @param index Stage index, 0-based.
 * @param options Width multiplier and base seed.
 * @returns The stage module and its metadata.
 * @throws {RangeError} If `index` is out of range or `width` is not positive.
 * @throws {TypeError} If `arch` is invalid.
 * @example
 * ```ts
 * import { residualStage } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { module, info } = residualStage("resnet18", 2, { width: 1 / 16, seed: 0 });
 * const y = tf.tidy(() => module.apply(tf.ones([1, 8, 8, info.inChannels]), { training: false }));
 * assert.deepEqual(y.shape, [1, 4, 4, 16]);
 * assert.equal(module.namedVariables()[0][0], "blocks.0.conv1.weight");
 * y.dispose();
 * ```
 */
export function residualStage(
  arch: ResNetArchName | ResNetArch,
  index: number,
  options: ResidualStageOptions,
): { module: ResidualStage; info: StageInfo } {
  const a = resolveArch(arch);
  const width = options.width ?? 1;
  const info = residualStageInfo(a, index, width);
  const Block = a.block === "bottleneck" ? Bottleneck : BasicBlock;
  const blockWidth = scaleChannels(a.widths[index], width);
  const blocks: Array<BasicBlock | Bottleneck> = [];
  let inChannels = info.inChannels;
  for (let j = 0; j < a.depths[index]; j++) {
    const block = new Block({
      inChannels,
      width: blockWidth,
      stride: j === 0 ? info.stride : 1,
      seed: deriveSeed(options.seed, "stages", index, "blocks", j),
    });
    blocks.push(block);
    inChannels = block.outChannels;
  }
  return { module: new ResidualStage(blocks), info };
}
