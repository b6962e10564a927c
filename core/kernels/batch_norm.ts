/**
 * The passes of a fused batch norm (`relu(batchNorm(x) + residual)`, ReLU and residual optional)
 * over channels-last tensors: training forward (batch statistics, normalisation, affine, residual
 * add, ReLU and the running-statistics update), its backward (dgamma, dbeta, dx and the residual's
 * gradient with the ReLU mask folded in) and the inference forward. On the wasm backend each is one
 * kernel that reads the activations twice at most: our own WASM SIMD passes (`src/batch_norm.c`:
 * float64 per-channel sums, then one elementwise pass) with the per-channel arithmetic between them
 * done here. Other backends compose tfjs ops. The functions have no gradient of their own:
 * {@linkcode BatchNorm} wraps them in custom gradients.
 *
 * Notation: `n` elements per channel, `xhat = (x - mean) * invstd`, `z = gamma * xhat + beta
 * (+ residual)`, `y = relu(z)` or `z`, `g = dy * (y > 0)` or `dy`. Backward: `dbeta = sum(g)`,
 * `dgamma = sum(g * xhat)`, `dx = k * (g - dbeta / n) + b * (x - mean)` with per-channel
 * `k = gamma * invstd`, `b = -k * invstd^2 * sum(g * (x - mean)) / n`, and `dresidual = g`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor, Tensor1D, Tensor2D } from "../tf_types.ts";
import { callOwnKernel } from "./_own_kernels.ts";
import { type HeapTensor, Scratch, type WasmBackend } from "./_wasm.ts";

/** Kernel name of the wasm training forward. */
export const BATCH_NORM_TRAIN_KERNEL = "MfiBatchNormTrain";
/** Kernel name of the wasm backward. */
export const BATCH_NORM_GRAD_KERNEL = "MfiBatchNormGrad";
/** Kernel name of the wasm inference forward. */
export const BATCH_NORM_INFER_KERNEL = "MfiBatchNormInfer";

function onWasm(kernel: string): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(kernel, "wasm") !== undefined;
}

function leadingAxes(x: tf.TensorInfo): number[] {
  return x.shape.map((_, i) => i).slice(0, -1);
}

/** Hyperparameters of the training forward. */
export interface BatchNormTrainAttrs {
  /** Added to the variance before the square root. */
  readonly epsilon: number;
  /** Running-statistics momentum (PyTorch convention: weight of the new batch). */
  readonly momentum: number;
  /** Whether a ReLU follows (after the residual add). */
  readonly relu: boolean;
}

/** Inputs of the training forward (`residual` optional). */
export interface BatchNormTrainInputs {
  readonly x: Tensor;
  readonly gamma: Tensor;
  readonly beta: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly residual?: Tensor;
}

/** What the training forward returns (the new running statistics are not yet assigned). */
export interface BatchNormTrainOutputs {
  /** `relu(gamma * xhat + beta + residual)` (ReLU and residual where asked). */
  readonly y: Tensor;
  /**
   * `[2, channels]`: the batch mean, then `1 / sqrt(biased batch variance + epsilon)` (one tensor,
   * so that the gradient tape saves one).
   */
  readonly stats: Tensor2D;
  /** `(1 - momentum) * runningMean + momentum * mean`. */
  readonly runningMean: Tensor1D;
  /** `(1 - momentum) * runningVar + momentum * unbiased batch variance`. */
  readonly runningVar: Tensor1D;
}

function checkShapes(what: string, x: tf.TensorInfo, others: Record<string, tf.TensorInfo>) {
  const c = x.shape[x.shape.length - 1];
  for (const [name, t] of Object.entries(others)) {
    const want = name === "residual" || name === "dy" || name === "y" ? x.shape : [c];
    if (!tf.util.arraysEqual(t.shape, want)) {
      throw new Error(
        `${what}: ${name} has shape [${t.shape}], expected [${want}] for x of shape [${x.shape}]`,
      );
    }
  }
}

/**
 * Training forward of the fused batch norm: batch statistics, normalisation, affine, residual
 * add, ReLU, and the updated running statistics (returned, not assigned).
 *
 * @param inputs `x` (channels last) and its per-channel parameters; `residual` like `x`.
 * @param attrs Epsilon, momentum and whether a ReLU follows.
 * @returns The output, the batch statistics the backward pass needs, the new running statistics.
 * @throws {Error} If a per-channel input or the residual has the wrong shape.
 * @example
 * ```ts
 * import "@mfi/core"; // registers the cpu backend
 * import { batchNormTrainForward } from "./batch_norm.ts";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.tensor2d([1, 10, 3, 30], [2, 2]);
 * const [gamma, runningVar] = [tf.ones([2]), tf.ones([2])];
 * const [beta, runningMean] = [tf.zeros([2]), tf.zeros([2])];
 * const out = batchNormTrainForward({ x, gamma, beta, runningMean, runningVar }, {
 *   epsilon: 0, momentum: 0.1, relu: true,
 * });
 * assert.deepEqual(Array.from(out.y.dataSync()), [0, 0, 1, 1]);
 * const [m0, m1, i0, i1] = out.stats.dataSync(); // the means, then 1 / std
 * assert.deepEqual([m0, m1, i0], [2, 20, 1]);
 * assert.ok(Math.abs(i1 - 0.1) < 1e-7);
 * assert.ok(Math.abs(out.runningVar.dataSync()[1] - (0.9 + 0.1 * 200)) < 1e-4); // unbiased
 * ```
 */
export function batchNormTrainForward(
  inputs: BatchNormTrainInputs,
  attrs: BatchNormTrainAttrs,
): BatchNormTrainOutputs {
  const { x, residual, ...perChannel } = inputs;
  checkShapes("batchNormTrainForward", x, { ...perChannel, ...(residual ? { residual } : {}) });
  if (onWasm(BATCH_NORM_TRAIN_KERNEL)) {
    const [y, stats, runningMean, runningVar] = tf.engine().runKernel(
      BATCH_NORM_TRAIN_KERNEL,
      { ...inputs } as unknown as tf.NamedTensorMap,
      { ...attrs } as unknown as tf.NamedAttrMap,
    ) as Tensor[];
    return {
      y,
      stats: stats as Tensor2D,
      runningMean: runningMean as Tensor1D,
      runningVar: runningVar as Tensor1D,
    };
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, leadingAxes(x));
    const n = x.size / x.shape[x.shape.length - 1];
    const m = attrs.momentum;
    const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
    let y = tf.batchNorm(x, mean, variance, inputs.beta, inputs.gamma, attrs.epsilon);
    if (residual) y = tf.add(y, residual);
    if (attrs.relu) y = tf.relu(y);
    return {
      y,
      stats: tf.stack([mean, tf.rsqrt(tf.add(variance, attrs.epsilon))]) as Tensor2D,
      runningMean: tf.add(tf.mul(inputs.runningMean, 1 - m), tf.mul(mean, m)) as Tensor1D,
      runningVar: tf.add(tf.mul(inputs.runningVar, 1 - m), tf.mul(unbiased, m)) as Tensor1D,
    };
  });
}

/** Inputs of the backward (`y` only with ReLU). */
export interface BatchNormGradInputs {
  /** Gradient of the output. */
  readonly dy: Tensor;
  /** The forward input. */
  readonly x: Tensor;
  /** The forward output (its sign is the ReLU mask); required when `relu`. */
  readonly y?: Tensor;
  /** `[2, channels]`: batch mean and `1 / sqrt(variance + epsilon)` from the forward pass. */
  readonly stats: Tensor;
  /** Scale. */
  readonly gamma: Tensor;
}

/** What the backward returns. */
export interface BatchNormGradOutputs {
  /** Gradient of `x`. */
  readonly dx: Tensor;
  /** Gradient of gamma. */
  readonly dgamma: Tensor1D;
  /** Gradient of beta. */
  readonly dbeta: Tensor1D;
  /** Gradient of the residual (`dy` masked by the ReLU), when asked for. */
  readonly dresidual?: Tensor;
}

/**
 * Backward of the fused batch norm in training mode.
 *
 * @param inputs Upstream gradient, the forward input and output, the batch statistics, gamma.
 * @param attrs `relu`: the forward applied a ReLU (then `y` is required); `residual`: return the
 *   residual's gradient too.
 * @returns dx, dgamma, dbeta and, with `residual`, dresidual.
 * @throws {Error} If `relu` is set without `y`, or a shape is wrong.
 * @example
 * ```ts
 * import "@mfi/core"; // registers the cpu backend
 * import { batchNormBackward } from "./batch_norm.ts";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const x = tf.tensor2d([1, 3], [2, 1]); // mean 2, std 1
 * const g = batchNormBackward(
 *   { dy: tf.tensor2d([1, 1], [2, 1]), x, stats: tf.tensor2d([[2], [1]]), gamma: tf.ones([1]) },
 *   { relu: false, residual: true },
 * );
 * assert.deepEqual(Array.from(g.dbeta.dataSync()), [2]);
 * assert.deepEqual(Array.from(g.dgamma.dataSync()), [0]); // sum(dy * xhat) = -1 + 1
 * assert.deepEqual(Array.from(g.dx.dataSync()), [0, 0]); // a shift of x changes nothing
 * assert.deepEqual(Array.from(g.dresidual!.dataSync()), [1, 1]);
 * ```
 */
export function batchNormBackward(
  inputs: BatchNormGradInputs,
  attrs: { readonly relu: boolean; readonly residual: boolean },
): BatchNormGradOutputs {
  const { dy, x, y, stats, gamma } = inputs;
  if (attrs.relu && y === undefined) {
    throw new Error("batchNormBackward: relu needs the forward output y (its sign is the mask)");
  }
  checkShapes("batchNormBackward", x, { dy, gamma, ...(y ? { y } : {}) });
  const c = x.shape[x.shape.length - 1];
  if (!tf.util.arraysEqual(stats.shape, [2, c])) {
    throw new Error(`batchNormBackward: stats has shape [${stats.shape}], expected [2,${c}]`);
  }
  if (onWasm(BATCH_NORM_GRAD_KERNEL)) {
    const outs = tf.engine().runKernel(
      BATCH_NORM_GRAD_KERNEL,
      { dy, x, stats, gamma, ...(attrs.relu ? { y } : {}) } as unknown as tf.NamedTensorMap,
      { ...attrs } as unknown as tf.NamedAttrMap,
    ) as Tensor[];
    return {
      dx: outs[0],
      dgamma: outs[1] as Tensor1D,
      dbeta: outs[2] as Tensor1D,
      ...(attrs.residual ? { dresidual: outs[3] } : {}),
    };
  }
  return tf.tidy(() => {
    const n = x.size / x.shape[x.shape.length - 1];
    const axes = leadingAxes(x);
    const [mean, invstd] = tf.unstack(stats);
    const g = attrs.relu ? tf.mul(dy, tf.step(y!)) : dy;
    const dbeta = tf.sum(g, axes);
    // sum(g * (x - mean)) = sum(g * x) - mean * sum(g)
    const dyxc = tf.sub(tf.sum(tf.mul(g, x), axes), tf.mul(mean, dbeta));
    const dgamma = tf.mul(dyxc, invstd);
    const k = tf.mul(gamma, invstd);
    const b = tf.mul(tf.mul(tf.mul(k, tf.square(invstd)), -1 / n), dyxc);
    const c = tf.sub(tf.mul(tf.mul(k, dbeta), -1 / n), tf.mul(b, mean));
    const dx = tf.add(tf.add(tf.mul(g, k), tf.mul(x, b)), c);
    return {
      dx,
      dgamma: dgamma as Tensor1D,
      dbeta: dbeta as Tensor1D,
      ...(attrs.residual ? { dresidual: attrs.relu ? g : tf.clone(g) } : {}),
    };
  });
}

/** Inputs of the inference forward (`residual` optional). */
export type BatchNormInferInputs = BatchNormTrainInputs;

/**
 * Inference forward of the fused batch norm: `relu(gamma * (x - runningMean) /
 * sqrt(runningVar + epsilon) + beta + residual)`, ReLU and residual where asked.
 *
 * @param inputs `x` (channels last), its per-channel parameters and statistics, `residual`.
 * @param attrs Epsilon and whether a ReLU follows.
 * @returns The output.
 * @throws {Error} If a per-channel input or the residual has the wrong shape.
 * @example
 * ```ts
 * import "@mfi/core"; // registers the cpu backend
 * import { batchNormInference } from "./batch_norm.ts";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const y = batchNormInference({
 *   x: tf.tensor2d([0, 4], [2, 1]),
 *   gamma: tf.ones([1]),
 *   beta: tf.zeros([1]),
 *   runningMean: tf.tensor1d([2]),
 *   runningVar: tf.tensor1d([4]),
 *   residual: tf.tensor2d([0.5, 0.5], [2, 1]),
 * }, { epsilon: 0, relu: true });
 * assert.deepEqual(Array.from(y.dataSync()), [0, 1.5]); // relu([-1, 1] + 0.5)
 * ```
 */
export function batchNormInference(
  inputs: BatchNormInferInputs,
  attrs: { readonly epsilon: number; readonly relu: boolean },
): Tensor {
  const { x, residual, ...perChannel } = inputs;
  checkShapes("batchNormInference", x, { ...perChannel, ...(residual ? { residual } : {}) });
  if (onWasm(BATCH_NORM_INFER_KERNEL)) {
    return tf.engine().runKernel(
      BATCH_NORM_INFER_KERNEL,
      { ...inputs } as unknown as tf.NamedTensorMap,
      { ...attrs } as unknown as tf.NamedAttrMap,
    ) as Tensor;
  }
  return tf.tidy(() => {
    const { gamma, beta, runningMean, runningVar } = inputs;
    let y = tf.batchNorm(x, runningMean, runningVar, beta, gamma, attrs.epsilon);
    if (residual) y = tf.add(y, residual);
    return attrs.relu ? tf.relu(y) : y;
  });
}

// ---------------------------------------------------------------------------------------------
// The wasm kernels: the passes over the activations are our own WASM SIMD kernels
// (src/batch_norm.c), the per-channel arithmetic between them is done here in float64. Allocate
// every output and temporary first, then take heap views (an allocation may grow the heap).

type Infos = Record<string, tf.TensorInfo | undefined>;

function floatInputs(what: string, inputs: Infos): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t !== undefined && t.dtype !== "float32") {
      throw new Error(`${what} needs float32 inputs, got ${name} ${t.dtype}`);
    }
  }
}

/** Float index of a heap tensor. */
function at(t: HeapTensor): number {
  return t.offset / 4;
}

/** A float64 view of `count` doubles at a heap tensor (8-byte aligned, as malloc returns). */
function f64(scratch: Scratch, t: HeapTensor, count: number): Float64Array {
  if (t.offset % 8 !== 0) throw new Error(`batch norm: scratch at ${t.offset} is not 8-aligned`);
  return new Float64Array(scratch.f32.buffer, t.offset, count);
}

/** Elements per row block of the reductions (a block is about 32 KiB of one input). */
const BLOCK_ELEMENTS = 8192;
/** The reductions' float32 partials run over this many rows (`ROWS` in src/batch_norm.c). */
const BLOCK_ROW_MULTIPLE = 8;
/**
 * Fewest rows per block: a block's two slots (2c doubles each) are then at most 1/8 of the block's
 * input, however wide the rows.
 */
const BLOCK_MIN_ROWS = 64;

/**
 * Rows per block of the batch-norm reductions (`bn_stats_f32`, `bn_grad_sums_f32`) for `c`
 * channels: about {@linkcode BLOCK_ELEMENTS} elements, a multiple of 8 rows, at least
 * {@linkcode BLOCK_MIN_ROWS} rows (so the partial sums' scratch stays under 1/8 of the input). It
 * depends on the shape only, never on the thread count, so the per-block partial sums, and the
 * totals the caller adds up in block order, are the same bits on any number of threads.
 *
 * @param c Channels (the last axis), at least 1.
 * @returns The block's row count.
 * @throws {RangeError} If `c` is not a whole number >= 1.
 * @example
 * ```ts
 * import { reductionBlockRows } from "./batch_norm.ts";
 * import assert from "node:assert/strict";
 * assert.equal(reductionBlockRows(16), 512);
 * assert.equal(reductionBlockRows(3), 2736); // 8192 / 3 rounded up to a multiple of 8
 * assert.equal(reductionBlockRows(5000), 64);
 * ```
 */
export function reductionBlockRows(c: number): number {
  if (!Number.isInteger(c) || c < 1) {
    throw new RangeError(`reductionBlockRows: c must be a whole number >= 1, got ${c}`);
  }
  const m = BLOCK_ROW_MULTIPLE;
  return Math.max(BLOCK_MIN_ROWS, Math.ceil(BLOCK_ELEMENTS / c / m) * m);
}

/**
 * Runs a blocked reduction (`bn_stats_f32` or `bn_grad_sums_f32`: per-block partial sums into
 * scratch) and adds the blocks' partials in block order into `2c` doubles.
 */
function blockedSums(
  scratch: Scratch,
  rows: number,
  c: number,
  run: (blocks: number, blockRows: number) => void,
): Float64Array {
  const blockRows = reductionBlockRows(c);
  const nb = Math.ceil(rows / blockRows);
  const width = 2 * c;
  // nb slots of 2c doubles, then nb more: each block's accumulators while the kernel runs it
  const partials = scratch.temp([4 * width * nb]);
  run(partials.offset, blockRows);
  const p = f64(scratch, partials, width * nb);
  const sums = p.slice(0, width);
  for (let b = 1; b < nb; b++) {
    const o = b * width;
    for (let j = 0; j < width; j++) sums[j] += p[o + j];
  }
  return sums;
}

/** The inputs of the forward kernels (training and inference): the tensor and its parameters. */
type BatchNormForwardInputs = {
  x: tf.TensorInfo;
  gamma: tf.TensorInfo;
  beta: tf.TensorInfo;
  runningMean: tf.TensorInfo;
  runningVar: tf.TensorInfo;
  residual?: tf.TensorInfo;
};

/** Wasm kernel of {@linkcode batchNormTrainForward}. */
export function batchNormTrainWasm(
  args: {
    inputs: BatchNormForwardInputs;
    backend: unknown;
    attrs: BatchNormTrainAttrs;
  },
): tf.TensorInfo[] {
  const { x, gamma, beta, runningMean, runningVar, residual } = args.inputs;
  const { epsilon, momentum, relu } = args.attrs;
  floatInputs("MfiBatchNormTrain", args.inputs);
  const c = x.shape[x.shape.length - 1];
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const [yInfo, yt] = scratch.output([...x.shape]);
    const [statsInfo, statsT] = scratch.output([2, c]);
    const [rmInfo, rmT] = scratch.output([c]);
    const [rvInfo, rvT] = scratch.output([c]);
    const outs = [yInfo, statsInfo, rmInfo, rvInfo];
    const xt = scratch.of(x);
    const rows = c === 0 ? 0 : xt.size / c;
    if (xt.size === 0) return outs;
    const affine = scratch.temp([3 * c]); // center (the mean), scale, shift
    // sums, then sums of squares
    const sums = blockedSums(
      scratch,
      rows,
      c,
      (blocks, blockRows) =>
        callOwnKernel(backend.wasm, "bn_stats_f32", [xt.offset, blocks, rows, c, blockRows]),
    );
    const heap = scratch.f32;
    const unbias = rows / Math.max(rows - 1, 1);
    const [g0, b0, rm0, rv0] = [gamma, beta, runningMean, runningVar].map((t) => at(scratch.of(t)));
    const meanO = at(statsT);
    const invO = meanO + c;
    const centerO = at(affine);
    const scaleO = centerO + c;
    const shiftO = centerO + 2 * c;
    for (let j = 0; j < c; j++) {
      const mean = sums[j] / rows;
      const variance = Math.max(0, sums[c + j] / rows - mean * mean);
      const invstd = 1 / Math.sqrt(variance + epsilon);
      const scale = heap[g0 + j] * invstd;
      heap[centerO + j] = mean;
      heap[scaleO + j] = scale;
      heap[shiftO + j] = heap[b0 + j];
      heap[meanO + j] = mean;
      heap[invO + j] = invstd;
      heap[at(rmT) + j] = (1 - momentum) * heap[rm0 + j] + momentum * mean;
      heap[at(rvT) + j] = (1 - momentum) * heap[rv0 + j] + momentum * variance * unbias;
    }
    callOwnKernel(backend.wasm, "bn_apply_f32", [
      xt.offset,
      residual ? scratch.of(residual).offset : 0,
      yt.offset,
      affine.offset,
      rows,
      c,
      relu ? 1 : 0,
    ]);
    return outs;
  } finally {
    scratch.release();
  }
}

/** Wasm kernel of {@linkcode batchNormBackward}. */
export function batchNormGradWasm(
  args: {
    inputs: {
      dy: tf.TensorInfo;
      x: tf.TensorInfo;
      y?: tf.TensorInfo;
      stats: tf.TensorInfo;
      gamma: tf.TensorInfo;
    };
    backend: unknown;
    attrs: { relu: boolean; residual: boolean };
  },
): tf.TensorInfo[] {
  const { dy, x, y, stats, gamma } = args.inputs;
  const { relu, residual } = args.attrs;
  floatInputs("MfiBatchNormGrad", args.inputs);
  if (relu && y === undefined) throw new Error("MfiBatchNormGrad: relu needs the input y");
  const c = x.shape[x.shape.length - 1];
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const [dxInfo, dxt] = scratch.output([...x.shape]);
    const [dgInfo, dgt] = scratch.output([c]);
    const [dbInfo, dbt] = scratch.output([c]);
    const outs = [dxInfo, dgInfo, dbInfo];
    let dr: HeapTensor | undefined;
    if (residual) {
      const [info, t] = scratch.output([...x.shape]);
      outs.push(info);
      dr = t;
    }
    const xt = scratch.of(x);
    const rows = c === 0 ? 0 : xt.size / c;
    if (xt.size === 0) return outs;
    // k, b, mean, mean(g) of dx = k (g - mean(g)) + b (x - mean)
    const kbmg = scratch.temp([4 * c]);
    const dyOff = scratch.of(dy).offset;
    const yOff = relu ? scratch.of(y!).offset : 0;
    // Pass 1: sum(g), then sum(g * x), with g written out as the residual's gradient.
    const sums = blockedSums(
      scratch,
      rows,
      c,
      (blocks, blockRows) =>
        callOwnKernel(backend.wasm, "bn_grad_sums_f32", [
          dyOff,
          xt.offset,
          yOff,
          dr ? dr.offset : 0,
          blocks,
          rows,
          c,
          blockRows,
        ]),
    );
    const heap = scratch.f32;
    const m0 = at(scratch.of(stats));
    const i0 = m0 + c;
    const g0 = at(scratch.of(gamma));
    const [dg0, db0, k0] = [at(dgt), at(dbt), at(kbmg)];
    for (let j = 0; j < c; j++) {
      const mu = heap[m0 + j];
      const is = heap[i0 + j];
      const sum = sums[j];
      const dyxc = sums[c + j] - mu * sum;
      heap[dg0 + j] = dyxc * is;
      heap[db0 + j] = sum;
      const k = heap[g0 + j] * is;
      const b = -k * is * is * dyxc / rows;
      heap[k0 + j] = k;
      heap[k0 + c + j] = b;
      heap[k0 + 2 * c + j] = mu;
      heap[k0 + 3 * c + j] = sum / rows;
    }
    // Pass 2: dx, from g (dresidual, already masked) or from dy and the mask.
    callOwnKernel(backend.wasm, "bn_grad_dx_f32", [
      dr ? dr.offset : dyOff,
      dr ? 0 : yOff,
      xt.offset,
      dxt.offset,
      kbmg.offset,
      rows,
      c,
    ]);
    return outs;
  } finally {
    scratch.release();
  }
}

/** Wasm kernel of {@linkcode batchNormInference}. */
export function batchNormInferWasm(
  args: {
    inputs: BatchNormForwardInputs;
    backend: unknown;
    attrs: { epsilon: number; relu: boolean };
  },
): tf.TensorInfo {
  const { x, gamma, beta, runningMean, runningVar, residual } = args.inputs;
  const { epsilon, relu } = args.attrs;
  floatInputs("MfiBatchNormInfer", args.inputs);
  const c = x.shape[x.shape.length - 1];
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const [yInfo, yt] = scratch.output([...x.shape]);
    const xt = scratch.of(x);
    if (xt.size === 0) return yInfo;
    const affine = scratch.temp([3 * c]); // center, scale, shift
    const heap = scratch.f32;
    const [g0, b0, rm0, rv0] = [gamma, beta, runningMean, runningVar].map((t) => at(scratch.of(t)));
    const a0 = at(affine);
    for (let j = 0; j < c; j++) {
      const scale = heap[g0 + j] / Math.sqrt(heap[rv0 + j] + epsilon);
      heap[a0 + j] = heap[rm0 + j];
      heap[a0 + c + j] = scale;
      heap[a0 + 2 * c + j] = heap[b0 + j];
    }
    callOwnKernel(backend.wasm, "bn_apply_f32", [
      xt.offset,
      residual ? scratch.of(residual).offset : 0,
      yt.offset,
      affine.offset,
      xt.size / c,
      c,
      relu ? 1 : 0,
    ]);
    return yInfo;
  } finally {
    scratch.release();
  }
}
