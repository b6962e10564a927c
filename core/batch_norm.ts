/**
 * Batch normalisation over NHWC channels with PyTorch's semantics: biased batch variance to
 * normalise, unbiased variance for the running estimate, momentum 0.1, epsilon 1e-5.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Variable } from "./tf_types.ts";
import {
  BATCH_NORM_INFER_KERNEL,
  batchNormBackward,
  batchNormInference,
  batchNormTrainForward,
} from "./kernels/batch_norm.ts";
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

/** Options of {@linkcode BatchNorm.apply}: the mode, and the epilogue fused into the op. */
export interface BatchNormApplyOptions extends ApplyOptions {
  /** Added after the affine transform (a residual block's shortcut); shaped like the input. */
  readonly residual?: Tensor;
  /** Apply a ReLU last (default false). */
  readonly relu?: boolean;
}

function onWasmInference(): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(BATCH_NORM_INFER_KERNEL, "wasm") !== undefined;
}

/**
 * Batch norm with variables `weight` (gamma), `bias` (beta), `running_mean`, `running_var`.
 * In training mode it normalises with batch statistics and updates the running statistics.
 * {@linkcode BatchNorm.apply} optionally fuses a residual add and a ReLU after it.
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
 * // A residual block's tail in one op: relu(bn(x) + shortcut).
 * const z = tf.tidy(() => bn.apply(x, { training: true, residual: tf.onesLike(x), relu: true }));
 * assert.ok(tf.min(z).dataSync()[0] >= 0);
 * tf.dispose([x, y, z]);
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
   * Normalises `x` per channel and, where asked, adds a residual and applies a ReLU, all in one
   * fused operation: `relu(bn(x) + residual)`. In training mode it normalises with the batch
   * statistics and updates the running statistics; its gradient is one custom gradient (two
   * reductions and one elementwise pass on the wasm backend) with the ReLU mask folded in.
   *
   * @param x Input with channels last.
   * @param options `training: true` uses and records batch statistics; `residual` (shaped like
   *   `x`) is added after the affine transform; `relu: true` applies a ReLU last.
   * @returns The normalised input (plus residual, through the ReLU).
   * @throws {Error} If `x`'s last axis is not `channels`, or the residual's shape is not `x`'s.
   */
  apply(x: Tensor, options: BatchNormApplyOptions): Tensor {
    const c = this.options.channels;
    if (x.shape[x.shape.length - 1] !== c) {
      throw new Error(
        `BatchNorm: input has ${x.shape[x.shape.length - 1]} channels (shape [${x.shape}]), ` +
          `the layer was built for ${c}`,
      );
    }
    const { residual, relu = false } = options;
    if (residual !== undefined && !tf.util.arraysEqual(residual.shape, x.shape)) {
      throw new Error(
        `BatchNorm: residual has shape [${residual.shape}], expected the input's [${x.shape}]`,
      );
    }
    const epsilon = this.options.epsilon ?? 1e-5;
    const params = {
      gamma: this.gamma,
      beta: this.beta,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
    };
    if (!options.training) {
      if (!onWasmInference()) {
        // Plain tfjs ops: autodiff gives their gradient.
        return batchNormInference({ x, ...params, residual }, { epsilon, relu });
      }
      return this.#inferenceWithGradient(x, residual, relu, epsilon);
    }
    return this.#train(x, residual, relu, epsilon);
  }

  /**
   * Training mode as one custom gradient. Backward, with xhat = (x - mean) * invstd, n elements per
   * channel and g = dy masked by the ReLU: dbeta = sum(g), dgamma = sum(g * xhat),
   * dx = gamma * invstd * (g - dbeta / n - xhat * dgamma / n), dresidual = g.
   */
  #train(x: Tensor, residual: Tensor | undefined, relu: boolean, epsilon: number): Tensor {
    const momentum = this.options.momentum ?? 0.1;
    const f = (...args: Array<Tensor | tf.GradSaveFunc>) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const [xs, gamma, beta, res] = args.slice(0, -1) as Tensor[];
      const out = batchNormTrainForward(
        {
          x: xs,
          gamma,
          beta,
          runningMean: this.runningMean,
          runningVar: this.runningVar,
          ...(res ? { residual: res } : {}),
        },
        { epsilon, momentum, relu },
      );
      this.runningMean.assign(out.runningMean);
      this.runningVar.assign(out.runningVar);
      tf.dispose([out.runningMean, out.runningVar]);
      // gamma is a variable (it outlives the step): the tape need not keep a copy.
      save([xs, out.stats, ...(relu ? [out.y] : [])]);
      const gradFunc = (dy: Tensor, saved: Tensor[]): Tensor[] => {
        const [sx, stats, y] = saved;
        const g = batchNormBackward(
          { dy, x: sx, stats, gamma, ...(y ? { y } : {}) },
          { relu, residual: res !== undefined },
        );
        return [g.dx, g.dgamma, g.dbeta, ...(g.dresidual ? [g.dresidual] : [])];
      };
      return { value: out.y, gradFunc };
    };
    const inputs = [x, this.gamma, this.beta, ...(residual ? [residual] : [])];
    return tf.customGrad(f)(...inputs) as Tensor;
  }

  /**
   * Inference mode on the wasm backend: one fused kernel forward, its gradient (rarely needed:
   * frozen statistics) from tfjs ops.
   */
  #inferenceWithGradient(
    x: Tensor,
    residual: Tensor | undefined,
    relu: boolean,
    epsilon: number,
  ): Tensor {
    const f = (...args: Array<Tensor | tf.GradSaveFunc>) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const [xs, gamma, beta, res] = args.slice(0, -1) as Tensor[];
      const y = batchNormInference({
        x: xs,
        gamma,
        beta,
        runningMean: this.runningMean,
        runningVar: this.runningVar,
        ...(res ? { residual: res } : {}),
      }, { epsilon, relu });
      save(relu ? [xs, y] : [xs]);
      const gradFunc = (dy: Tensor, saved: Tensor[]): Tensor[] => {
        const [sx, sy] = saved;
        const axes = sx.shape.map((_, i) => i).slice(0, -1);
        const g = relu ? tf.mul(dy, tf.step(sy)) : dy;
        const invstd = tf.rsqrt(tf.add(this.runningVar, epsilon));
        const dgamma = tf.mul(tf.sum(tf.mul(g, tf.sub(sx, this.runningMean)), axes), invstd);
        const dbeta = tf.sum(g, axes);
        const dx = tf.mul(g, tf.mul(gamma, invstd));
        return [dx, dgamma, dbeta, ...(res ? [relu ? g : tf.clone(g)] : [])];
      };
      return { value: y, gradFunc };
    };
    const inputs = [x, this.gamma, this.beta, ...(residual ? [residual] : [])];
    return tf.customGrad(f)(...inputs) as Tensor;
  }

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
