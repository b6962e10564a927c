/**
 * Per-channel reductions of channels-last tensors for batch norm, as single-pass kernels on the
 * wasm backend. tfjs-backend-wasm reduces over leading axes by transposing the whole tensor first;
 * these read it once, row by row, with float64 accumulators. Other backends use tfjs ops.
 * Neither function has a gradient: call them inside a custom gradient. (BatchNorm itself uses the
 * fused passes of `batch_norm.ts`, which also normalise and compute the gradient.)
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor1D } from "../tf_types.ts";
import { Scratch, type WasmBackend } from "./_wasm.ts";

/** Kernel name of the wasm channel moments. */
export const CHANNEL_MOMENTS_KERNEL = "MfiChannelMoments";
/** Kernel name of the wasm gradient sums. */
export const CHANNEL_GRAD_SUMS_KERNEL = "MfiChannelGradSums";

function leadingAxes(x: Tensor): number[] {
  return x.shape.map((_, i) => i).slice(0, -1);
}

function onWasm(kernel: string): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(kernel, "wasm") !== undefined;
}

/**
 * Mean and biased variance over every axis but the last.
 *
 * @param x A float32 tensor, channels last.
 * @returns `mean` and `variance`, each `[channels]`.
 * @example
 * ```ts
 * import { channelMoments } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { mean, variance } = channelMoments(tf.tensor2d([1, 10, 3, 30], [2, 2]));
 * assert.deepEqual(Array.from(mean.dataSync()), [2, 20]);
 * assert.deepEqual(Array.from(variance.dataSync()), [1, 100]);
 * ```
 */
export function channelMoments(x: Tensor): { mean: Tensor1D; variance: Tensor1D } {
  if (onWasm(CHANNEL_MOMENTS_KERNEL)) {
    const [mean, variance] = tf.engine().runKernel(
      CHANNEL_MOMENTS_KERNEL,
      { x },
      {},
    ) as Tensor[];
    return { mean: mean as Tensor1D, variance: variance as Tensor1D };
  }
  const { mean, variance } = tf.moments(x, leadingAxes(x));
  return { mean: mean as Tensor1D, variance: variance as Tensor1D };
}

/**
 * The two reductions of the batch-norm gradient: `sum(dy)` and `sum(dy * x)` over every axis but
 * the last.
 *
 * @param dy Upstream gradient, channels last.
 * @param x The batch-norm input, same shape.
 * @returns `sum` and `dot`, each `[channels]`.
 * @throws {Error} If the shapes differ.
 * @example
 * ```ts
 * import { channelGradSums } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const r = channelGradSums(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([1, 1, 2, 0], [2, 2]));
 * assert.deepEqual(Array.from(r.sum.dataSync()), [4, 6]);
 * assert.deepEqual(Array.from(r.dot.dataSync()), [7, 2]);
 * ```
 */
export function channelGradSums(
  dy: Tensor,
  x: Tensor,
): { sum: Tensor1D; dot: Tensor1D } {
  if (!tf.util.arraysEqual(dy.shape, x.shape)) {
    throw new Error(`channelGradSums: dy [${dy.shape}] and x [${x.shape}] must have one shape`);
  }
  if (onWasm(CHANNEL_GRAD_SUMS_KERNEL)) {
    const [sum, dot] = tf.engine().runKernel(
      CHANNEL_GRAD_SUMS_KERNEL,
      { dy, x },
      {},
    ) as Tensor[];
    return { sum: sum as Tensor1D, dot: dot as Tensor1D };
  }
  const axes = leadingAxes(x);
  return tf.tidy(() => ({
    sum: tf.sum(dy, axes) as Tensor1D,
    dot: tf.sum(tf.mul(dy, x), axes) as Tensor1D,
  }));
}

function writeOutputs(scratch: Scratch, values: Float64Array[]): tf.TensorInfo[] {
  return values.map((v) => {
    const [info, t] = scratch.output([v.length]);
    scratch.f32.set(Float32Array.from(v), t.offset / 4);
    return info;
  });
}

/** Wasm kernel of {@linkcode channelMoments}. */
export function channelMomentsWasm(
  args: { inputs: { x: tf.TensorInfo }; backend: unknown },
): tf.TensorInfo[] {
  const { x } = args.inputs;
  const backend = args.backend as WasmBackend;
  if (x.dtype !== "float32") throw new Error(`channelMoments needs float32, got ${x.dtype}`);
  const c = x.shape[x.shape.length - 1];
  const scratch = new Scratch(backend);
  const xt = scratch.of(x);
  const rows = c === 0 ? 0 : xt.size / c;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const heap = scratch.f32;
  let p = xt.offset / 4;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const v = heap[p + j];
      sum[j] += v;
      sq[j] += v * v;
    }
    p += c;
  }
  const n = Math.max(rows, 1);
  for (let j = 0; j < c; j++) {
    const m = sum[j] / n;
    sum[j] = m;
    sq[j] = Math.max(0, sq[j] / n - m * m);
  }
  return writeOutputs(scratch, [sum, sq]);
}

/** Wasm kernel of {@linkcode channelGradSums}. */
export function channelGradSumsWasm(
  args: { inputs: { dy: tf.TensorInfo; x: tf.TensorInfo }; backend: unknown },
): tf.TensorInfo[] {
  const { dy, x } = args.inputs;
  const backend = args.backend as WasmBackend;
  if (x.dtype !== "float32" || dy.dtype !== "float32") {
    throw new Error(`channelGradSums needs float32, got ${dy.dtype} and ${x.dtype}`);
  }
  const c = x.shape[x.shape.length - 1];
  const scratch = new Scratch(backend);
  const xt = scratch.of(x);
  const dyt = scratch.of(dy);
  const rows = c === 0 ? 0 : xt.size / c;
  const sum = new Float64Array(c);
  const dot = new Float64Array(c);
  const heap = scratch.f32;
  let px = xt.offset / 4;
  let pd = dyt.offset / 4;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const g = heap[pd + j];
      sum[j] += g;
      dot[j] += g * heap[px + j];
    }
    px += c;
    pd += c;
  }
  return writeOutputs(scratch, [sum, dot]);
}
