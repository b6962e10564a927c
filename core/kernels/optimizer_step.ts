/**
 * One optimizer update over every parameter as one wasm kernel: {@linkcode Sgd} and
 * {@linkcode AdamW} call these instead of five to nine tfjs ops per variable. Each kernel (our own
 * WASM SIMD, `src/optimizer_step.c`) walks a table of (parameter, gradient, state) heap offsets and
 * writes the new parameters and state into fresh outputs (the caller assigns them; nothing is
 * updated in place). The arithmetic is the optimizers' tfjs-op sequence in float32, rounding after
 * every operation as those ops do (no fused multiply-add), so the results are the ones the
 * per-variable ops give, bit for bit.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "../tf_types.ts";
import { callOwnKernel } from "./_own_kernels.ts";
import { Scratch, type WasmBackend } from "./_wasm.ts";

/** Kernel name of the fused SGD step. */
export const SGD_STEP_KERNEL = "MfiSgdStep";
/** Kernel name of the fused AdamW step. */
export const ADAMW_STEP_KERNEL = "MfiAdamWStep";

/**
 * Whether the fused optimizer kernel `kernel` runs here (the wasm backend with the training
 * kernels registered).
 *
 * @param kernel {@linkcode SGD_STEP_KERNEL} or {@linkcode ADAMW_STEP_KERNEL}.
 * @returns True on the wasm backend with the kernel registered.
 * @example
 * ```ts
 * import "@mfi/core"; // registers the cpu backend
 * import { fusedOptimizerAvailable, SGD_STEP_KERNEL } from "./optimizer_step.ts";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * assert.equal(fusedOptimizerAvailable(SGD_STEP_KERNEL), false);
 * ```
 */
export function fusedOptimizerAvailable(kernel: string): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(kernel, "wasm") !== undefined;
}

/** Hyperparameters of one fused SGD step. */
export interface SgdStepAttrs {
  /** Learning rate. */
  readonly lr: number;
  /** Momentum (0: no buffers are passed or returned). */
  readonly momentum: number;
  /** Nesterov momentum. */
  readonly nesterov: boolean;
  /** Per parameter: its L2 weight decay (0 where it is not decayed). */
  readonly weightDecays: readonly number[];
}

/** One parameter of a fused step: the variable's value, its gradient and its state slots. */
export interface StepEntry {
  /** Current parameter value. */
  readonly param: Tensor;
  /** Its gradient (same shape). */
  readonly grad: Tensor;
  /** State slots (SGD: the momentum buffer if momentum > 0; AdamW: exp_avg, exp_avg_sq). */
  readonly slots: readonly Tensor[];
}

function runStep(
  kernel: string,
  entries: readonly StepEntry[],
  slotCount: number,
  attrs: Record<string, unknown>,
): Tensor[][] {
  const inputs: Record<string, Tensor> = {};
  entries.forEach((e, i) => {
    if (!tf.util.arraysEqual(e.grad.shape, e.param.shape)) {
      throw new RangeError(
        `${kernel}: gradient ${i} has shape [${e.grad.shape}], its parameter [${e.param.shape}]`,
      );
    }
    if (e.slots.length !== slotCount) {
      throw new RangeError(
        `${kernel}: entry ${i} has ${e.slots.length} slots, expected ${slotCount}`,
      );
    }
    inputs[`p${i}`] = e.param;
    inputs[`g${i}`] = e.grad;
    e.slots.forEach((s, k) => (inputs[`s${k}_${i}`] = s));
  });
  const outs = tf.engine().runKernel(
    kernel,
    inputs as unknown as tf.NamedTensorMap,
    { ...attrs, count: entries.length } as unknown as tf.NamedAttrMap,
  ) as Tensor[];
  const per = 1 + slotCount;
  return entries.map((_, i) => outs.slice(i * per, (i + 1) * per));
}

/**
 * One SGD step (PyTorch's, dampening 0) over every entry in one kernel: `d = g + wd * p;
 * buf = momentum * buf + d; d = nesterov ? d + momentum * buf : buf; p = p - lr * d`.
 *
 * @param entries Parameters with gradients and (with momentum) their buffer as the one slot.
 * @param attrs Learning rate, momentum, Nesterov and each entry's weight decay.
 * @returns Per entry `[newParam]` or `[newParam, newBuffer]` (fresh tensors for the caller).
 * @throws {RangeError} If a gradient's shape differs from its parameter's or the slots or weight
 *   decays do not match the entries.
 * @example
 * ```ts
 * import { registerWasmTrainingKernels } from "@mfi/core";
 * import { sgdStep } from "./optimizer_step.ts";
 * import "@tensorflow/tfjs-backend-wasm";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("wasm");
 * registerWasmTrainingKernels();
 * const [[p, buf]] = tf.tidy(() =>
 *   sgdStep([{ param: tf.tensor1d([1]), grad: tf.tensor1d([2]), slots: [tf.tensor1d([1])] }], {
 *     lr: 0.1, momentum: 0.5, nesterov: false, weightDecays: [0],
 *   })
 * );
 * assert.deepEqual(Array.from(buf.dataSync()), [2.5]); // 0.5 * 1 + 2
 * assert.ok(Math.abs(p.dataSync()[0] - 0.75) < 1e-7); // 1 - 0.1 * 2.5
 * tf.dispose([p, buf]);
 * await tf.setBackend("cpu");
 * ```
 */
export function sgdStep(entries: readonly StepEntry[], attrs: SgdStepAttrs): Tensor[][] {
  if (attrs.weightDecays.length !== entries.length) {
    throw new RangeError(
      `sgdStep: ${attrs.weightDecays.length} weight decays for ${entries.length} entries`,
    );
  }
  return runStep(SGD_STEP_KERNEL, entries, attrs.momentum > 0 ? 1 : 0, { ...attrs });
}

/** Hyperparameters of one fused AdamW step (already including the bias corrections). */
export interface AdamWStepAttrs {
  /** First-moment coefficient. */
  readonly beta1: number;
  /** Second-moment coefficient. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly epsilon: number;
  /** `lr / (1 - beta1^t)`. */
  readonly stepSize: number;
  /** `sqrt(1 - beta2^t)`. */
  readonly bc2Sqrt: number;
  /** Per parameter: `1 - lr * weightDecay`, or 1 where it is not decayed. */
  readonly decayFactors: readonly number[];
}

/**
 * One AdamW step over every entry in one kernel: `p *= decay; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= stepSize * m / (sqrt(v) / bc2Sqrt + eps)`.
 *
 * @param entries Parameters with gradients and their two slots (exp_avg, exp_avg_sq).
 * @param attrs Coefficients, bias corrections and each entry's decay factor.
 * @returns Per entry `[newParam, newExpAvg, newExpAvgSq]` (fresh tensors for the caller).
 * @throws {RangeError} If a gradient's shape differs from its parameter's or the slots or decay
 *   factors do not match the entries.
 * @example
 * ```ts
 * import { registerWasmTrainingKernels } from "@mfi/core";
 * import { adamWStep } from "./optimizer_step.ts";
 * import "@tensorflow/tfjs-backend-wasm";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("wasm");
 * registerWasmTrainingKernels();
 * const zero = () => tf.zeros([1]);
 * const [[p, m, v]] = tf.tidy(() =>
 *   adamWStep([{ param: tf.tensor1d([1]), grad: tf.tensor1d([3]), slots: [zero(), zero()] }], {
 *     beta1: 0.9, beta2: 0.999, epsilon: 0, stepSize: 0.1 / 0.1, bc2Sqrt: Math.sqrt(0.001),
 *     decayFactors: [1],
 *   })
 * );
 * // The first Adam step moves the weight by lr against the gradient's sign.
 * assert.ok(Math.abs(p.dataSync()[0] - 0.9) < 1e-6);
 * assert.ok(Math.abs(m.dataSync()[0] - 0.3) < 1e-6 && Math.abs(v.dataSync()[0] - 0.009) < 1e-6);
 * tf.dispose([p, m, v]);
 * await tf.setBackend("cpu");
 * ```
 */
export function adamWStep(entries: readonly StepEntry[], attrs: AdamWStepAttrs): Tensor[][] {
  if (attrs.decayFactors.length !== entries.length) {
    throw new RangeError(
      `adamWStep: ${attrs.decayFactors.length} decay factors for ${entries.length} entries`,
    );
  }
  return runStep(ADAMW_STEP_KERNEL, entries, 2, { ...attrs });
}

type Inputs = Record<string, tf.TensorInfo>;

/**
 * Allocates every output, then writes the kernel's table (see `src/optimizer_step.c`): per entry
 * eight ints (param, grad, slot0, slot1, out param, out slot0, out slot1, element count) and one
 * float. Returns the outputs and the table's byte offsets.
 */
function table(
  scratch: Scratch,
  inputs: Inputs,
  count: number,
  slotCount: number,
  perEntry: readonly number[],
): { outs: tf.TensorInfo[]; ints: number; floats: number } {
  const outs: tf.TensorInfo[] = [];
  const outOffsets: number[][] = [];
  for (let i = 0; i < count; i++) {
    const p = inputs[`p${i}`];
    if (p.dtype !== "float32" || inputs[`g${i}`].dtype !== "float32") {
      throw new Error(`optimizer step needs float32 parameters and gradients (entry ${i})`);
    }
    const o: number[] = [];
    for (let k = 0; k <= slotCount; k++) {
      const [info, t] = scratch.output([...p.shape]);
      outs.push(info);
      o.push(t.offset);
    }
    outOffsets.push(o);
  }
  const ints = scratch.temp([8 * count]);
  const floats = scratch.temp([count]);
  const i32 = scratch.i32;
  const f32 = scratch.f32;
  for (let i = 0; i < count; i++) {
    const row = ints.offset / 4 + 8 * i;
    const slots = Array.from(
      { length: 2 },
      (_, k) => k < slotCount ? scratch.of(inputs[`s${k}_${i}`]).offset : 0,
    );
    const outsOf = [0, 1, 2].map((k) => outOffsets[i][k] ?? 0);
    const p = scratch.of(inputs[`p${i}`]);
    i32.set([p.offset, scratch.of(inputs[`g${i}`]).offset, ...slots, ...outsOf, p.size], row);
    f32[floats.offset / 4 + i] = perEntry[i];
  }
  return { outs, ints: ints.offset, floats: floats.offset };
}

/** Wasm kernel of {@linkcode sgdStep}. */
export function sgdStepWasm(
  args: { inputs: Inputs; backend: unknown; attrs: SgdStepAttrs & { count: number } },
): tf.TensorInfo[] {
  const { lr, momentum, nesterov, weightDecays, count } = args.attrs;
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const { outs, ints, floats } = table(
      scratch,
      args.inputs,
      count,
      momentum > 0 ? 1 : 0,
      weightDecays,
    );
    callOwnKernel(backend.wasm, "sgd_step_f32", [
      ints,
      floats,
      count,
      lr,
      momentum,
      nesterov ? 1 : 0,
    ]);
    return outs;
  } finally {
    scratch.release();
  }
}

/** Wasm kernel of {@linkcode adamWStep}. */
export function adamWStepWasm(
  args: { inputs: Inputs; backend: unknown; attrs: AdamWStepAttrs & { count: number } },
): tf.TensorInfo[] {
  const { beta1, beta2, epsilon, stepSize, bc2Sqrt, decayFactors, count } = args.attrs;
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const { outs, ints, floats } = table(scratch, args.inputs, count, 2, decayFactors);
    // Float arguments reach the kernel rounded to float32, as tfjs makes scalars of them.
    callOwnKernel(backend.wasm, "adamw_step_f32", [
      ints,
      floats,
      count,
      beta1,
      beta2,
      1 - beta1,
      1 - beta2,
      epsilon,
      stepSize,
      bc2Sqrt,
    ]);
    return outs;
  } finally {
    scratch.release();
  }
}
