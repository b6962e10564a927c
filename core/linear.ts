/**
 * A fully connected layer with PyTorch's default initialisation (uniform in
 * +-1/sqrt(fan_in) for weight and bias). The weight is stored [in, out] (`x @ W`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor2D, Variable } from "./tf_types.ts";
import type { ApplyOptions, Module, NamedVariables } from "./module.ts";
import { Rng } from "./random.ts";

/** Options of {@linkcode Linear}. */
export interface LinearOptions {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** Add a bias (default true). */
  readonly bias?: boolean;
  /** Seed of the initialisation. */
  readonly seed: number;
  /** Initialisation: PyTorch's default uniform (default), or zeros. */
  readonly init?: "uniform" | "zeros";
}

/**
 * A linear layer, variables `weight` ([in, out]) and `bias` ([out]).
 *
 * @example
 * ```ts
 * import { Linear } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const fc = new Linear({ inFeatures: 4, outFeatures: 10, seed: 0 });
 * const y = tf.tidy(() => fc.apply(tf.ones([2, 4])));
 * assert.deepEqual(y.shape, [2, 10]);
 * y.dispose();
 * ```
 */
export class Linear implements Module {
  /** The options the layer was built with. */
  readonly options: Readonly<LinearOptions>;
  /** Weight, [in, out]. */
  readonly weight: Variable;
  /** Bias, or undefined. */
  readonly bias: Variable | undefined;

  /**
   * Creates the layer with its seeded initial weights.
   *
   * @param options Layer shape and initialisation.
   * @throws {RangeError} On a non-positive size.
   */
  constructor(options: LinearOptions) {
    for (const key of ["inFeatures", "outFeatures"] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) {
        throw new RangeError(
          `Cannot build Linear: ${key} must be a positive integer, got ${options[key]}`,
        );
      }
    }
    this.options = Object.freeze({ ...options });
    const { inFeatures: i, outFeatures: o } = options;
    const bound = 1 / Math.sqrt(i);
    const rng = new Rng(options.seed);
    const zeros = options.init === "zeros";
    const w = zeros ? new Float32Array(i * o) : rng.uniformArray(i * o, -bound, bound);
    // tf.variable copies its initial value: build the initial tensors inside tidy so they are freed.
    this.weight = tf.tidy(() => tf.variable(tf.tensor2d(w, [i, o]), true));
    const b = zeros ? new Float32Array(o) : rng.uniformArray(o, -bound, bound);
    this.bias = options.bias === false
      ? undefined
      : tf.tidy(() => tf.variable(tf.tensor1d(b), true));
  }

  /**
   * Applies `x W + b`.
   *
   * @param x Input, [batch, inFeatures].
   * @param _options Unused: a linear layer has no mode.
   * @returns Output, [batch, outFeatures].
   */
  apply(x: Tensor, _options?: ApplyOptions): Tensor2D {
    const y = tf.matMul(x as Tensor2D, this.weight as Tensor2D) as Tensor2D;
    return this.bias ? tf.add<Tensor2D>(y, this.bias) : y;
  }

  /**
   * The layer's variables.
   *
   * @returns `weight` and, if present, `bias`.
   */
  namedVariables(): NamedVariables {
    return this.bias ? [["weight", this.weight], ["bias", this.bias]] : [["weight", this.weight]];
  }
}
