/**
 * Registers the training kernels of this folder on the wasm backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { installHeapGuard } from "./_heap.ts";
import type { WasmModule } from "./_wasm.ts";
import { batchMatMulWasm } from "./batch_mat_mul.ts";
import {
  CHANNEL_GRAD_SUMS_KERNEL,
  CHANNEL_MOMENTS_KERNEL,
  channelGradSumsWasm,
  channelMomentsWasm,
} from "./channel_stats.ts";
import { conv2dBackpropFilterOwnWasm, conv2dBackpropFilterWasm } from "./conv2d_backprop_filter.ts";
import { conv2dBackpropInputWasm } from "./conv2d_backprop_input.ts";
import { unsortedSegmentSumWasm } from "./unsorted_segment_sum.ts";

/** The kernels {@linkcode registerWasmTrainingKernels} installs, by tfjs kernel name. */
export const WASM_TRAINING_KERNELS: readonly string[] = [
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "BatchMatMul",
  "UnsortedSegmentSum",
  CHANNEL_MOMENTS_KERNEL,
  CHANNEL_GRAD_SUMS_KERNEL,
];

const kernelFuncs: Record<string, tf.KernelFunc> = {
  Conv2DBackpropFilter: conv2dBackpropFilterWasm as unknown as tf.KernelFunc,
  Conv2DBackpropInput: conv2dBackpropInputWasm as unknown as tf.KernelFunc,
  BatchMatMul: batchMatMulWasm as unknown as tf.KernelFunc,
  UnsortedSegmentSum: unsortedSegmentSumWasm as unknown as tf.KernelFunc,
  [CHANNEL_MOMENTS_KERNEL]: channelMomentsWasm as unknown as tf.KernelFunc,
  [CHANNEL_GRAD_SUMS_KERNEL]: channelGradSumsWasm as unknown as tf.KernelFunc,
};

let registered = false;
let filterChoice: FilterKernelChoice = "xnnpack";

/** Which implementation computes `Conv2DBackpropFilter` on wasm. */
export type FilterKernelChoice = "xnnpack" | "own";

/** Options of {@linkcode registerWasmTrainingKernels}. */
export interface WasmTrainingKernelOptions {
  /**
   * `Conv2DBackpropFilter` from XNNPACK's forward convolution (`"xnnpack"`, the default, threaded)
   * or from our own WASM SIMD kernel (`"own"`, `src/conv2d_backprop_filter.c`, single-threaded).
   * Omitted: keep the current choice.
   */
  readonly conv2dBackpropFilter?: FilterKernelChoice;
}

/**
 * Installs fast training kernels on the wasm backend, replacing tfjs-backend-wasm's own where it
 * has them: `Conv2DBackpropFilter` and `Conv2DBackpropInput` from XNNPACK's forward convolution,
 * `BatchMatMul` with transposes and batches on XNNPACK's fast path, `UnsortedSegmentSum`, and the
 * single-pass per-channel reductions batch norm uses (`channelMoments`, `channelGradSums`).
 * If the wasm backend is already initialised it also guards its allocator so that an exhausted
 * heap throws a {@linkcode WasmHeapError} (the kernels install the guard on first use otherwise).
 * Idempotent; call it after `tf.setBackend("wasm")` (selectBackend does). A call with
 * `conv2dBackpropFilter` switches that kernel's implementation (both match the cpu backend).
 *
 * @param options Which `Conv2DBackpropFilter` to use (default: keep the current one, XNNPACK at
 *   first).
 * @throws {RangeError} If `conv2dBackpropFilter` is neither "xnnpack" nor "own".
 * @example
 * ```ts
 * import { registerWasmTrainingKernels, wasmFilterKernel } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * registerWasmTrainingKernels();
 * registerWasmTrainingKernels();
 * assert.ok(tf.getKernel("Conv2DBackpropFilter", "wasm") !== undefined);
 * registerWasmTrainingKernels({ conv2dBackpropFilter: "own" });
 * assert.equal(wasmFilterKernel(), "own");
 * registerWasmTrainingKernels({ conv2dBackpropFilter: "xnnpack" });
 * ```
 */
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): void {
  const choice = options.conv2dBackpropFilter ?? filterChoice;
  if (choice !== "xnnpack" && choice !== "own") {
    throw new RangeError(
      `registerWasmTrainingKernels: conv2dBackpropFilter must be "xnnpack" or "own", got ${
        JSON.stringify(choice)
      }`,
    );
  }
  if (!registered || choice !== filterChoice) {
    registered = true;
    filterChoice = choice;
    const funcs: Record<string, tf.KernelFunc> = {
      ...kernelFuncs,
      ...(choice === "own"
        ? { Conv2DBackpropFilter: conv2dBackpropFilterOwnWasm as unknown as tf.KernelFunc }
        : {}),
    };
    for (const kernelName of WASM_TRAINING_KERNELS) {
      if (tf.getKernel(kernelName, "wasm") !== undefined) tf.unregisterKernel(kernelName, "wasm");
      tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: funcs[kernelName] });
    }
  }
  const registry = (tf.engine() as unknown as { registry: Record<string, { wasm?: WasmModule }> })
    .registry;
  const wasm = registry["wasm"]?.wasm;
  if (wasm) installHeapGuard(wasm);
}

/**
 * The implementation {@linkcode registerWasmTrainingKernels} last registered for
 * `Conv2DBackpropFilter`.
 *
 * @returns "xnnpack" or "own".
 * @example
 * ```ts
 * import { wasmFilterKernel } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.ok(["xnnpack", "own"].includes(wasmFilterKernel()));
 * ```
 */
export function wasmFilterKernel(): FilterKernelChoice {
  return filterChoice;
}
