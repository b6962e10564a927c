/**
 * One optimizer update over every parameter as one wasm kernel: {@linkcode Sgd} and
 * {@linkcode AdamW} call these instead of five to nine tfjs ops per variable. Each kernel walks the
 * list of (parameter, gradient, state) tensors on the heap and writes the new parameters and
 * state into fresh outputs (the caller assigns them; nothing is updated in place). The arithmetic
 * is the optimizers' tfjs-op sequence in float32, rounding after every operation as those ops do,
 * so the results are the ones the per-variable ops give.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Tensor } from "../tf_types.ts";
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

/** Allocates every output first (allocation may grow the heap), then returns float offsets. */
function layout(
  scratch: Scratch,
  inputs: Inputs,
  count: number,
  slotCount: number,
): { outs: tf.TensorInfo[]; offsets: { p: number; g: number; s: number[]; out: number[] }[] } {
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
      o.push(t.offset / 4);
    }
    outOffsets.push(o);
  }
  const offsets = outOffsets.map((out, i) => ({
    p: scratch.of(inputs[`p${i}`]).offset / 4,
    g: scratch.of(inputs[`g${i}`]).offset / 4,
    s: Array.from({ length: slotCount }, (_, k) => scratch.of(inputs[`s${k}_${i}`]).offset / 4),
    out,
  }));
  return { outs, offsets };
}

function sizeOf(t: tf.TensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** Wasm kernel of {@linkcode sgdStep}. */
export function sgdStepWasm(
  args: { inputs: Inputs; backend: unknown; attrs: SgdStepAttrs & { count: number } },
): tf.TensorInfo[] {
  const { lr, momentum, nesterov, weightDecays, count } = args.attrs;
  const slotCount = momentum > 0 ? 1 : 0;
  const scratch = new Scratch(args.backend as WasmBackend);
  const { outs, offsets } = layout(scratch, args.inputs, count, slotCount);
  const heap = scratch.f32;
  const fr = Math.fround;
  const lrF = fr(lr);
  const momF = fr(momentum);
  for (let i = 0; i < count; i++) {
    const n = sizeOf(args.inputs[`p${i}`]);
    const { p, g, s, out } = offsets[i];
    const wd = fr(weightDecays[i]);
    const decay = weightDecays[i] !== 0;
    const po = out[0];
    for (let e = 0; e < n; e++) {
      const pv = heap[p + e];
      let d = heap[g + e];
      if (decay) d = fr(d + fr(pv * wd));
      if (slotCount === 1) {
        const next = fr(fr(heap[s[0] + e] * momF) + d);
        heap[out[1] + e] = next;
        d = nesterov ? fr(d + fr(next * momF)) : next;
      }
      heap[po + e] = pv - fr(d * lrF);
    }
  }
  return outs;
}

/** Wasm kernel of {@linkcode adamWStep}. */
export function adamWStepWasm(
  args: { inputs: Inputs; backend: unknown; attrs: AdamWStepAttrs & { count: number } },
): tf.TensorInfo[] {
  const { beta1, beta2, epsilon, stepSize, bc2Sqrt, decayFactors, count } = args.attrs;
  const scratch = new Scratch(args.backend as WasmBackend);
  const { outs, offsets } = layout(scratch, args.inputs, count, 2);
  const heap = scratch.f32;
  const fr = Math.fround;
  const b1 = fr(beta1);
  const b2 = fr(beta2);
  const c1 = fr(1 - beta1);
  const c2 = fr(1 - beta2);
  const eps = fr(epsilon);
  const step = fr(stepSize);
  const bc2 = fr(bc2Sqrt);
  for (let i = 0; i < count; i++) {
    const n = sizeOf(args.inputs[`p${i}`]);
    const { p, g, s, out } = offsets[i];
    const decay = decayFactors[i] !== 1;
    const factor = fr(decayFactors[i]);
    const [m0, v0] = s;
    const [po, mo, vo] = out;
    for (let e = 0; e < n; e++) {
      const gv = heap[g + e];
      const pv = decay ? fr(heap[p + e] * factor) : heap[p + e];
      const m = fr(fr(heap[m0 + e] * b1) + fr(gv * c1));
      const v = fr(fr(heap[v0 + e] * b2) + fr(fr(gv * gv) * c2));
      heap[mo + e] = m;
      heap[vo + e] = v;
      const denom = fr(fr(fr(Math.sqrt(v)) / bc2) + eps);
      heap[po + e] = pv - fr(fr(m / denom) * step);
    }
  }
  return outs;
}
