/**
 * The CIFAR ResNet stem: 3x3 convolution (stride 1, no max-pool), batch norm, ReLU.
 *
 * @module
 */
import type { Tensor } from "@mfi/core";
import {
  type ApplyOptions,
  BatchNorm,
  Conv2d,
  deriveSeed,
  type Module,
  type NamedVariables,
  prefixed,
} from "@mfi/core";

/** Options of {@linkcode ResNetStem}. */
export interface ResNetStemOptions {
  /** Image channels (3 for CIFAR). */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Seed; the conv's seed is `deriveSeed(seed, "conv")`. */
  readonly seed: number;
}

/**
 * `relu(bn(conv(x)))` with a 3x3 stride-1 convolution. Variables `conv.weight`, `bn.weight`,
 * `bn.bias`, `bn.running_mean`, `bn.running_var`.
 *
 * @example
 * ```ts
 * import { ResNetStem } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const stem = new ResNetStem({ inChannels: 3, outChannels: 8, seed: 0 });
 * const y = tf.tidy(() => stem.apply(tf.ones([2, 8, 8, 3]), { training: false }));
 * assert.deepEqual(y.shape, [2, 8, 8, 8]);
 * y.dispose();
 * ```
 */
export class ResNetStem implements Module {
  /** The 3x3 convolution. */
  readonly conv: Conv2d;
  /** Its batch norm. */
  readonly bn: BatchNorm;

  /**
   * Builds the module and allocates its variables.
   *
   * @param options Channels and seed.
   * @throws {RangeError} On invalid sizes.
   */
  constructor(options: ResNetStemOptions) {
    this.conv = new Conv2d({
      inChannels: options.inChannels,
      outChannels: options.outChannels,
      kernelSize: 3,
      seed: deriveSeed(options.seed, "conv"),
    });
    this.bn = new BatchNorm({ channels: options.outChannels });
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC images.
   * @param options Training or inference mode (batch norm).
   * @returns The stem's features.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    return this.bn.apply(this.conv.apply(x), { training: options.training, relu: true });
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `conv.*` then `bn.*`.
   */
  namedVariables(): NamedVariables {
    return [
      ...prefixed("conv", this.conv.namedVariables()),
      ...prefixed("bn", this.bn.namedVariables()),
    ];
  }
}
