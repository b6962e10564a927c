/**
 * A 2-D convolution with PyTorch's arithmetic: symmetric zero padding of `floor(k / 2)` pixels on
 * every side (also at stride 2, where tfjs's `"same"` would pad only bottom/right), HWIO weights,
 * Kaiming-normal (fan_out) initialisation as torchvision's ResNets use.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor4D, Variable } from "./tf_types.ts";
import type { ApplyOptions, Module, NamedVariables } from "./module.ts";
import { Rng } from "./random.ts";

/** Options of {@linkcode Conv2d}. */
export interface Conv2dOptions {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Square kernel size (1, 3, 7, ...). */
  readonly kernelSize: number;
  /** Stride (default 1). */
  readonly stride?: number;
  /** Padding on every side (default `floor(kernelSize / 2)`). */
  readonly padding?: number;
  /** Add a bias (default false: ResNet convs are followed by batch norm). */
  readonly bias?: boolean;
  /** Seed of the weight initialisation. */
  readonly seed: number;
  /** Initialisation: Kaiming-normal fan_out (default), or zeros. */
  readonly init?: "kaiming-fan-out" | "zeros";
}

function checkPositiveInt(what: string, value: unknown): void {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(`Cannot build Conv2d: ${what} must be a positive integer, got ${value}`);
  }
}

/**
 * A convolution layer, variables `weight` ([k, k, in, out]) and optionally `bias` ([out]).
 *
 * @example
 * ```ts
 * import { Conv2d } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const conv = new Conv2d({ inChannels: 3, outChannels: 8, kernelSize: 3, stride: 2, seed: 1 });
 * const y = tf.tidy(() => conv.apply(tf.zeros([2, 32, 32, 3]), { training: false }));
 * assert.deepEqual(y.shape, [2, 16, 16, 8]);
 * y.dispose();
 * ```
 */
export class Conv2d implements Module {
  /** The options the layer was built with. */
  readonly options: Readonly<Conv2dOptions>;
  /** Weights, HWIO. */
  readonly weight: Variable;
  /** Bias, or undefined. */
  readonly bias: Variable | undefined;
  readonly #stride: number;
  readonly #pad: number;

  /**
   * Creates the layer with its seeded initial weights.
   *
   * @param options Layer shape and initialisation.
   * @throws {RangeError} On a non-positive size or a negative padding.
   */
  constructor(options: Conv2dOptions) {
    checkPositiveInt("inChannels", options.inChannels);
    checkPositiveInt("outChannels", options.outChannels);
    checkPositiveInt("kernelSize", options.kernelSize);
    checkPositiveInt("stride", options.stride ?? 1);
    const pad = options.padding ?? Math.floor(options.kernelSize / 2);
    if (!Number.isInteger(pad) || pad < 0) {
      throw new RangeError(
        `Cannot build Conv2d: padding must be a non-negative integer, got ${pad}`,
      );
    }
    this.options = Object.freeze({ ...options });
    this.#stride = options.stride ?? 1;
    this.#pad = pad;
    const { inChannels: cin, outChannels: cout, kernelSize: k } = options;
    const n = k * k * cin * cout;
    const values = options.init === "zeros"
      ? new Float32Array(n)
      : new Rng(options.seed).normalArray(n, Math.sqrt(2 / (cout * k * k)));
    // tf.variable copies its initial value: build the initial tensors inside tidy so they are freed.
    this.weight = tf.tidy(() => tf.variable(tf.tensor4d(values, [k, k, cin, cout]), true));
    this.bias = options.bias ? tf.tidy(() => tf.variable(tf.zeros([cout]), true)) : undefined;
  }

  /**
   * Convolves `x`.
   *
   * @param x NHWC input.
   * @param _options Unused: a convolution has no mode.
   * @returns NHWC output.
   */
  apply(x: Tensor, _options?: ApplyOptions): Tensor4D {
    const p = this.#pad;
    const padding: [[number, number], [number, number], [number, number], [number, number]] = [
      [0, 0],
      [p, p],
      [p, p],
      [0, 0],
    ];
    const y = tf.conv2d(
      x as Tensor4D,
      this.weight as Tensor4D,
      this.#stride,
      p === 0 ? "valid" : padding,
    );
    return this.bias ? tf.add<Tensor4D>(y, this.bias) : y;
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
