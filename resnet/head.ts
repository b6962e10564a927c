/**
 * The classifier head of CIFAR ResNets: global average pooling, then a linear layer.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "@mfi/core";
import {
  type ApplyOptions,
  deriveSeed,
  Linear,
  type Module,
  type NamedVariables,
  prefixed,
} from "@mfi/core";

/** Options of {@linkcode ClassifierHead}. */
export interface ClassifierHeadOptions {
  /** Channels of the last stage's output. */
  readonly inChannels: number;
  /** Number of classes. */
  readonly classes: number;
  /** Seed; the linear layer's seed is `deriveSeed(seed, "fc")`. */
  readonly seed: number;
}

/**
 * Global average pool over height and width, then `fc` (PyTorch's default init). Variables
 * `fc.weight` ([in, classes]) and `fc.bias`.
 *
 * @example
 * ```ts
 * import { ClassifierHead } from "@mfi/resnet";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const head = new ClassifierHead({ inChannels: 8, classes: 10, seed: 0 });
 * const y = tf.tidy(() => head.apply(tf.ones([2, 4, 4, 8]), { training: false }));
 * assert.deepEqual(y.shape, [2, 10]);
 * y.dispose();
 * ```
 */
export class ClassifierHead implements Module {
  /** The linear classifier. */
  readonly fc: Linear;

  /**
   * Builds the module and allocates its variables.
   *
   * @param options Channels, classes and seed.
   * @throws {RangeError} On a non-positive size.
   */
  constructor(options: ClassifierHeadOptions) {
    this.fc = new Linear({
      inFeatures: options.inChannels,
      outFeatures: options.classes,
      seed: deriveSeed(options.seed, "fc"),
    });
  }

  /**
   * Runs the forward pass (inside `tf.tidy` or a gradient function).
   *
   * @param x NHWC features.
   * @param _options Unused: the head has no mode.
   * @returns Logits, [batch, classes].
   */
  apply(x: Tensor, _options?: ApplyOptions): Tensor {
    return this.fc.apply(tf.mean(x, [1, 2]));
  }

  /**
   * The module's variables with their stable names.
   *
   * @returns `fc.weight`, `fc.bias`.
   */
  namedVariables(): NamedVariables {
    return prefixed("fc", this.fc.namedVariables());
  }
}
