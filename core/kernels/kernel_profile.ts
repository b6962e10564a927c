/**
 * Where a step's time goes, kernel by kernel. `tf.profile()` does not give this on the wasm
 * backend (it reports memory per kernel; timings come only through the engine's debug mode, which
 * reads every output back to check it for NaN). Instead {@linkcode profileKernels} wraps every
 * kernel function registered for a backend with a timer while a function runs, and restores them
 * afterwards. Kernels that call other kernels through the engine are charged their own time only
 * (self time), so the times add up; what the kernels do not account for is the time between
 * kernels (JavaScript, the gradient tape, tensor bookkeeping). Convolutions and matrix products
 * carry their flops, computed from the shapes.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** One kernel call. */
export interface KernelCall {
  /** The tfjs kernel name, e.g. `Conv2DBackpropFilter`. */
  readonly name: string;
  /** For convolutions: the geometry, e.g. `Conv2D 3x3 16->32 s2`; otherwise the name. */
  readonly label: string;
  /** Self time in milliseconds (minus the kernels it ran through the engine). */
  readonly ms: number;
  /** Floating-point operations (multiply and add counted apart); 0 when not counted. */
  readonly flops: number;
}

/** What {@linkcode profileKernels} recorded. */
export interface KernelProfile<T> {
  /** What the profiled function returned. */
  readonly result: T;
  /** Every kernel call, in order. */
  readonly calls: KernelCall[];
  /** Wall time of the whole function, ms. */
  readonly wallMs: number;
}

type Shape = readonly number[];

function size(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

function shapeOf(t: unknown): Shape | undefined {
  return (t as { shape?: Shape } | undefined)?.shape;
}

/**
 * Flops and a geometry label of a kernel call, from its input and output shapes: the
 * convolutions (forward, both gradients, depthwise) and the matrix products; other kernels get 0.
 *
 * @param name The kernel name.
 * @param inputs The call's named inputs (tensor infos with shapes).
 * @param attrs The call's attributes.
 * @param outputShape Shape of the (first) output.
 * @returns `{ flops, label }`; `label` is the name for kernels without a geometry.
 * @example
 * ```ts
 * import { kernelFlops } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const x = { shape: [2, 8, 8, 4] }, filter = { shape: [3, 3, 4, 6] };
 * const f = kernelFlops("Conv2D", { x, filter }, { strides: 2 }, [2, 4, 4, 6]);
 * assert.deepEqual(f, { flops: 2 * (2 * 4 * 4 * 6) * (3 * 3 * 4), label: "Conv2D 3x3 4->6 s2" });
 * ```
 */
export function kernelFlops(
  name: string,
  inputs: Readonly<Record<string, unknown>>,
  attrs: Readonly<Record<string, unknown>> | undefined,
  outputShape: readonly number[],
): { flops: number; label: string } {
  const stride = (attrs?.strides ?? 1) as number | [number, number];
  const s = Array.isArray(stride) ? stride[0] : stride;
  const conv = (filter: Shape | undefined, perTap: Shape | undefined) => {
    if (filter === undefined || perTap === undefined) return { flops: 0, label: name };
    const [kh, kw, cin, cout] = filter;
    return {
      flops: 2 * size(perTap) * kh * kw * cin,
      label: `${name} ${kh}x${kw} ${cin}->${cout} s${s}`,
    };
  };
  switch (name) {
    case "Conv2D":
    case "FusedConv2D":
      // Every output element is a dot product over kh x kw x cin taps.
      return conv(shapeOf(inputs.filter), outputShape);
    case "Conv2DBackpropInput":
      return conv(shapeOf(inputs.filter), shapeOf(inputs.dy));
    case "Conv2DBackpropFilter":
      return conv(attrs?.filterShape as Shape | undefined, shapeOf(inputs.dy));
    case "DepthwiseConv2dNative":
    case "FusedDepthwiseConv2D": {
      const f = shapeOf(inputs.filter);
      if (f === undefined) return { flops: 0, label: name };
      return { flops: 2 * size(outputShape) * f[0] * f[1], label: `${name} ${f[0]}x${f[1]} s${s}` };
    }
    case "BatchMatMul":
    case "_FusedMatMul": {
      const a = shapeOf(inputs.a);
      if (a === undefined) return { flops: 0, label: name };
      const k = attrs?.transposeA ? a[a.length - 2] : a[a.length - 1];
      return { flops: 2 * size(outputShape) * k, label: name };
    }
    default:
      return { flops: 0, label: name };
  }
}

/**
 * Runs `fn` with every kernel of `backendName` timed, then restores the kernels (also when `fn`
 * throws). Only the kernels registered when it starts are timed; do not register kernels while it
 * runs.
 *
 * @param backendName The backend whose kernels to time (the one `fn` runs on).
 * @param fn The work to profile, e.g. a few training steps.
 * @returns What `fn` returned, every kernel call, and the wall time.
 * @example
 * ```ts
 * import { profileKernels } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { calls } = await profileKernels("cpu", () => tf.tidy(() => tf.sum(tf.relu(tf.ones([4])))).dispose());
 * assert.deepEqual(calls.map((c) => c.name).filter((n) => n === "Relu"), ["Relu"]);
 * ```
 */
export async function profileKernels<T>(
  backendName: string,
  fn: () => T | Promise<T>,
): Promise<KernelProfile<Awaited<T>>> {
  const originals = tf.getKernelsForBackend(backendName);
  const calls: KernelCall[] = [];
  const childMs: number[] = [];
  const wrap = (k: tf.KernelConfig): tf.KernelConfig => ({
    ...k,
    kernelFunc: (args) => {
      childMs.push(0);
      const t0 = performance.now();
      let out: tf.TensorInfo | tf.TensorInfo[] | undefined;
      try {
        out = k.kernelFunc(args);
        return out;
      } finally {
        const total = performance.now() - t0;
        const children = childMs.pop()!;
        if (childMs.length > 0) childMs[childMs.length - 1] += total;
        const first = Array.isArray(out) ? out[0] : out;
        const { flops, label } = first === undefined
          ? { flops: 0, label: k.kernelName }
          : kernelFlops(
            k.kernelName,
            args.inputs as Record<string, unknown>,
            args.attrs as Record<string, unknown> | undefined,
            first.shape,
          );
        calls.push({ name: k.kernelName, label, ms: total - children, flops });
      }
    },
  });
  const swap = (configs: readonly tf.KernelConfig[]) => {
    for (const k of configs) {
      tf.unregisterKernel(k.kernelName, backendName);
      tf.registerKernel(k);
    }
  };
  swap(originals.map(wrap));
  try {
    const t0 = performance.now();
    const result = await fn();
    return { result, calls, wallMs: performance.now() - t0 };
  } finally {
    swap(originals);
  }
}

/** One line of a {@linkcode summarizeKernelProfile} table. */
export interface KernelProfileRow {
  /** Kernel name (or label), or `(between kernels)` for the time no kernel accounts for. */
  readonly name: string;
  /** Calls per step. */
  readonly count: number;
  /** Milliseconds per step. */
  readonly ms: number;
  /** Fraction of the step's wall time (all rows sum to 1). */
  readonly share: number;
  /** Flops per step (0 where not counted). */
  readonly flops: number;
  /** Achieved GFLOP/s (undefined where flops are not counted). */
  readonly gflops?: number;
}

/** The row for the wall time that no kernel accounts for. */
export const BETWEEN_KERNELS = "(between kernels)";

/**
 * Aggregates kernel calls into per-step rows, slowest first, plus a
 * {@linkcode BETWEEN_KERNELS} row for the rest of the wall time, so that the shares sum to 1.
 *
 * @param calls The calls of `steps` steps.
 * @param wallMs Wall time of the `steps` steps.
 * @param options `steps` (default 1) divides counts and times; `by` groups by kernel `name`
 *   (default) or by `label` (convolutions by geometry).
 * @returns The rows.
 * @throws {RangeError} If `steps` is not a whole number >= 1, or `wallMs` is negative or not finite.
 * @example
 * ```ts
 * import { summarizeKernelProfile } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const calls = [
 *   { name: "Relu", label: "Relu", ms: 1, flops: 0 },
 *   { name: "Conv2D", label: "Conv2D 3x3 1->1 s1", ms: 2, flops: 4e6 },
 * ];
 * const rows = summarizeKernelProfile(calls, 4);
 * assert.deepEqual(rows.map((r) => [r.name, r.share]), [["Conv2D", 0.5], ["Relu", 0.25], ["(between kernels)", 0.25]]);
 * assert.equal(rows[0].gflops, 2);
 * ```
 */
export function summarizeKernelProfile(
  calls: readonly KernelCall[],
  wallMs: number,
  options: { readonly steps?: number; readonly by?: "name" | "label" } = {},
): KernelProfileRow[] {
  const steps = options.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(
      `Cannot summarize the kernel profile: steps must be a whole number >= 1, got ${steps}`,
    );
  }
  if (!(wallMs >= 0 && Number.isFinite(wallMs))) {
    throw new RangeError(`Cannot summarize the kernel profile: wallMs must be >= 0, got ${wallMs}`);
  }
  const by = options.by ?? "name";
  const groups = new Map<string, { count: number; ms: number; flops: number }>();
  let kernelMs = 0;
  for (const c of calls) {
    const key = by === "name" ? c.name : c.label;
    const g = groups.get(key) ?? { count: 0, ms: 0, flops: 0 };
    g.count++;
    g.ms += c.ms;
    g.flops += c.flops;
    groups.set(key, g);
    kernelMs += c.ms;
  }
  // Timer granularity can make the kernels' sum exceed the wall time by a hair: never below 0.
  const total = Math.max(wallMs, kernelMs);
  const row = (name: string, count: number, ms: number, flops: number): KernelProfileRow => ({
    name,
    count: count / steps,
    ms: ms / steps,
    share: total === 0 ? 0 : ms / total,
    flops: flops / steps,
    ...(flops > 0 && ms > 0 ? { gflops: flops / ms / 1e6 } : {}),
  });
  const rows = [...groups].map(([name, g]) => row(name, g.count, g.ms, g.flops))
    .sort((a, b) => b.ms - a.ms);
  rows.push(row(BETWEEN_KERNELS, 0, total - kernelMs, 0));
  return rows;
}
