/**
 * Batch normalisation over NHWC channels with PyTorch's semantics: biased batch variance to
 * normalise, unbiased variance for the running estimate, momentum 0.1, epsilon 1e-5.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Variable } from "./tf_types.ts";
import { channelGradSums, channelMoments } from "./kernels/channel_stats.ts";
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
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const bn = new BatchNorm({ channels: 4 });
 * const x = tf.randomNormal([8, 2, 2, 4], 3, 2, "float32", 1);
 * const y = tf.tidy(() => bn.apply(x, { training: true }));
 * assert.ok(Math.abs(tf.mean(y).dataSync()[0]) < 1e-5);
 * tf.dispose([x, y]);
 * ```
 */
export class BatchNorm implements Module {
  /** The options the layer was built with. */
  readonly options: Readonly<BatchNormOptions>;
  /** Scale. */
  readonly gamma: Variable;
  /** Shift. */
  readonly beta: Variable;
  /** Running mean (buffer). */
  readonly runningMean: Variable;
  /** Running variance (buffer). */
  readonly runningVar: Variable;

  /**
   * Creates the layer: gamma 1, beta 0, running mean 0, running variance 1.
   *
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
    // tf.variable copies its initial value: build the initial tensors inside tidy so they are freed.
    this.gamma = tf.tidy(() => tf.variable(tf.fill([c], options.gammaInit ?? 1), true));
    this.beta = tf.tidy(() => tf.variable(tf.zeros([c]), true));
    this.runningMean = tf.tidy(() => tf.variable(tf.zeros([c]), false));
    this.runningVar = tf.tidy(() => tf.variable(tf.ones([c]), false));
  }

  /**
   * Normalises `x` per channel.
   *
   * @param x Input with channels last.
   * @param options `training: true` uses and records batch statistics.
   * @returns The normalised input.
   */
  apply(x: Tensor, options: ApplyOptions): Tensor {
    const eps = this.options.epsilon ?? 1e-5;
    if (!options.training) {
      return tf.batchNorm(x, this.runningMean, this.runningVar, this.beta, this.gamma, eps);
    }
    return this.#train(x, this.gamma, this.beta) as Tensor;
  }

  /**
   * Training-mode forward and backward as one custom gradient: the forward pass is moments + one
   * fused normalisation kernel, the backward pass two reductions and three elementwise kernels
   * (instead of the ~50 kernels autodiff makes of moments + batchNorm).
   *
   * Backward, with xhat = (x - mean) * invstd and n elements per channel:
   * dbeta = sum(dy), dgamma = sum(dy * xhat),
   * dx = gamma * invstd * (dy - dbeta / n - xhat * dgamma / n).
   */
  readonly #train = tf.customGrad(
    (...args: Array<Tensor | tf.GradSaveFunc>) => {
      const [x, gamma, beta] = args as Tensor[];
      const save = args[3] as tf.GradSaveFunc;
      const eps = this.options.epsilon ?? 1e-5;
      const channels = x.shape[x.shape.length - 1];
      const { mean, variance } = channelMoments(x);
      const n = x.size / channels;
      const m = this.options.momentum ?? 0.1;
      tf.tidy(() => {
        const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
        this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
        this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(unbiased, m)));
      });
      save([x, mean, variance, gamma]);
      const value = tf.batchNorm(x, mean, variance, beta, gamma, eps);
      const gradFunc = (dy: Tensor, saved: Tensor[]): Tensor[] => {
        const [xs, mu, v, g] = saved;
        const invstd = tf.rsqrt(tf.add(v, eps));
        const { sum: dbeta, dot } = channelGradSums(dy, xs);
        // sum(dy * (x - mean)) = sum(dy * x) - mean * sum(dy)
        const dyxc = tf.sub(dot, tf.mul(mu, dbeta));
        const dgamma = tf.mul(dyxc, invstd);
        const k = tf.mul(g, invstd);
        // dx = k * dy + b * x + c, per channel b and c.
        const b = tf.mul(tf.mul(tf.mul(k, tf.square(invstd)), -1 / n), dyxc);
        const c = tf.sub(tf.mul(tf.mul(k, dbeta), -1 / n), tf.mul(b, mu));
        const scaledDy = tf.batchNorm(dy, tf.zerosLike(mu), tf.onesLike(v), c, k, 0);
        const dx = tf.add(scaledDy, tf.mul(xs, b));
        return [dx, dgamma, dbeta];
      };
      return { value, gradFunc };
    },
  );

  /**
   * The layer's variables.
   *
   * @returns `weight`, `bias`, `running_mean`, `running_var` (PyTorch's names).
   */
  namedVariables(): NamedVariables {
    return [
      ["weight", this.gamma],
      ["bias", this.beta],
      ["running_mean", this.runningMean],
      ["running_var", this.runningVar],
    ];
  }
}
