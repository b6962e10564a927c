/**
 * Batch normalisation over NHWC channels with PyTorch's semantics: biased batch variance to
 * normalise, unbiased variance for the running estimate, momentum 0.1, epsilon 1e-5.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { ApplyOptions, Module, NamedVariables } from "./module.ts";

/** Options of {@linkcode BatchNorm}. */
export interface BatchNormOptions {
  /** Number of channels (last axis). */
  readonly channels: number;
  /** Running-statistics momentum, PyTorch convention (default 0.1). */
  readonly momentum?: number;
  /** Epsilon (default 1e-5). */
  readonly epsilon?: number;
  /** Initial gamma (default 1; 0 zero-initialises a residual branch). */
  readonly gammaInit?: number;
}

/**
 * Batch norm with variables `weight` (gamma), `bias` (beta), `running_mean`, `running_var`.
 * In training mode it normalises with batch statistics and updates the running statistics.
 *
 * @example
 * ```ts
 * import { BatchNorm } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const bn = new BatchNorm({ channels: 4 });
 * const x = tf.randomNormal([8, 2, 2, 4], 3, 2, "float32", 1);
 * const y = tf.tidy(() => bn.apply(x, { training: true }));
 * assert.ok(Math.abs(y.mean().dataSync()[0]) < 1e-5);
 * tf.dispose([x, y]);
 * ```
 */
export class BatchNorm implements Module {
  /** The options the layer was built with. */
  readonly options: Readonly<BatchNormOptions>;
  /** Scale. */
  readonly gamma: tf.Variable;
  /** Shift. */
  readonly beta: tf.Variable;
  /** Running mean (buffer). */
  readonly runningMean: tf.Variable;
  /** Running variance (buffer). */
  readonly runningVar: tf.Variable;

  /**
   * @param options Channel count and hyperparameters.
   * @throws {RangeError} On a non-positive channel count or a momentum outside [0, 1].
   */
  constructor(options: BatchNormOptions) {
    if (!Number.isInteger(options.channels) || options.channels < 1) {
      throw new RangeError(
        `Cannot build BatchNorm: channels must be a positive integer, got ${options.channels}`,
      );
    }
    const m = options.momentum ?? 0.1;
    if (!(m >= 0 && m <= 1)) {
      throw new RangeError(`Cannot build BatchNorm: momentum must be in [0, 1], got ${m}`);
    }
    this.options = Object.freeze({ ...options });
    const c = options.channels;
    this.gamma = tf.variable(tf.fill([c], options.gammaInit ?? 1), true);
    this.beta = tf.variable(tf.zeros([c]), true);
    this.runningMean = tf.variable(tf.zeros([c]), false);
    this.runningVar = tf.variable(tf.ones([c]), false);
  }

  /**
   * @param x Input with channels last.
   * @param options `training: true` uses and records batch statistics.
   * @returns The normalised input.
   */
  apply(x: tf.Tensor, options: ApplyOptions): tf.Tensor {
    const eps = this.options.epsilon ?? 1e-5;
    if (!options.training) {
      return tf.batchNorm(x, this.runningMean, this.runningVar, this.beta, this.gamma, eps);
    }
    const axes = x.shape.map((_, i) => i).slice(0, -1);
    const { mean, variance } = tf.moments(x, axes);
    const n = x.size / x.shape[x.shape.length - 1];
    const m = this.options.momentum ?? 0.1;
    tf.tidy(() => {
      const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(unbiased, m)));
    });
    return tf.batchNorm(x, mean, variance, this.beta, this.gamma, eps);
  }

  /** @returns `weight`, `bias`, `running_mean`, `running_var` (PyTorch's names). */
  namedVariables(): NamedVariables {
    return [
      ["weight", this.gamma],
      ["bias", this.beta],
      ["running_mean", this.runningMean],
      ["running_var", this.runningVar],
    ];
  }
}
