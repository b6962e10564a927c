/**
 * Registers the training kernels of this folder on the wasm backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { installHeapGuard } from "./_heap.ts";
import type { WasmModule } from "./_wasm.ts";
import { addWasm } from "./add.ts";
import { batchMatMulWasm } from "./batch_mat_mul.ts";
import {
  BATCH_NORM_GRAD_KERNEL,
  BATCH_NORM_INFER_KERNEL,
  BATCH_NORM_TRAIN_KERNEL,
  batchNormGradWasm,
  batchNormInferWasm,
  batchNormTrainWasm,
} from "./batch_norm.ts";
import {
  CHANNEL_GRAD_SUMS_KERNEL,
  CHANNEL_MOMENTS_KERNEL,
  channelGradSumsWasm,
  channelMomentsWasm,
} from "./channel_stats.ts";
import { conv2dBackpropFilterOwnWasm, conv2dBackpropFilterWasm } from "./conv2d_backprop_filter.ts";
import { conv2dOwnWasm } from "./conv2d.ts";
import { conv2dBackpropInputOwnWasm, conv2dBackpropInputWasm } from "./conv2d_backprop_input.ts";
import { identityWasm } from "./identity.ts";
import {
  ADAMW_STEP_KERNEL,
  adamWStepWasm,
  SGD_STEP_KERNEL,
  sgdStepWasm,
} from "./optimizer_step.ts";
import { unsortedSegmentSumWasm } from "./unsorted_segment_sum.ts";

/**
 * The kernels {@linkcode registerWasmTrainingKernels} always installs, by tfjs kernel name (it
 * also replaces `Conv2D` when `conv2d` is "own").
 */
export const WASM_TRAINING_KERNELS: readonly string[] = [
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "BatchMatMul",
  "UnsortedSegmentSum",
  "Identity",
  CHANNEL_MOMENTS_KERNEL,
  CHANNEL_GRAD_SUMS_KERNEL,
  BATCH_NORM_TRAIN_KERNEL,
  BATCH_NORM_GRAD_KERNEL,
  BATCH_NORM_INFER_KERNEL,
  SGD_STEP_KERNEL,
  ADAMW_STEP_KERNEL,
];

const kernelFuncs: Record<string, tf.KernelFunc> = {
  Conv2DBackpropFilter: conv2dBackpropFilterWasm as unknown as tf.KernelFunc,
  Conv2DBackpropInput: conv2dBackpropInputWasm as unknown as tf.KernelFunc,
  BatchMatMul: batchMatMulWasm as unknown as tf.KernelFunc,
  UnsortedSegmentSum: unsortedSegmentSumWasm as unknown as tf.KernelFunc,
  Identity: identityWasm as unknown as tf.KernelFunc,
  [CHANNEL_MOMENTS_KERNEL]: channelMomentsWasm as unknown as tf.KernelFunc,
  [CHANNEL_GRAD_SUMS_KERNEL]: channelGradSumsWasm as unknown as tf.KernelFunc,
  [BATCH_NORM_TRAIN_KERNEL]: batchNormTrainWasm as unknown as tf.KernelFunc,
  [BATCH_NORM_GRAD_KERNEL]: batchNormGradWasm as unknown as tf.KernelFunc,
  [BATCH_NORM_INFER_KERNEL]: batchNormInferWasm as unknown as tf.KernelFunc,
  [SGD_STEP_KERNEL]: sgdStepWasm as unknown as tf.KernelFunc,
  [ADAMW_STEP_KERNEL]: adamWStepWasm as unknown as tf.KernelFunc,
};

let registered = false;

/** Which implementation computes a convolution kernel on wasm. */
export type WasmKernelChoice = "xnnpack" | "own";

/** Which implementation computes `Conv2DBackpropFilter` on wasm. */
export type FilterKernelChoice = WasmKernelChoice;

/** The convolution kernels whose implementation {@linkcode registerWasmTrainingKernels} chooses. */
export interface WasmKernelChoices {
  /**
   * `Conv2D`: tfjs-backend-wasm's own (`"xnnpack"`, threaded) or our own WASM SIMD kernel
   * (`"own"`, `src/conv2d.c`; dilated convolutions still go to XNNPACK).
   */
  readonly conv2d: WasmKernelChoice;
  /**
   * `Conv2DBackpropInput`: stride phases on XNNPACK's forward convolution (`"xnnpack"`) or on our
   * own kernel (`"own"`, `src/conv2d.c`).
   */
  readonly conv2dBackpropInput: WasmKernelChoice;
  /**
   * `Conv2DBackpropFilter` from XNNPACK's forward convolution (`"xnnpack"`, threaded) or from our
   * own WASM SIMD kernel (`"own"`, `src/conv2d_backprop_filter.c`).
   */
  readonly conv2dBackpropFilter: WasmKernelChoice;
}

/** Options of {@linkcode registerWasmTrainingKernels}: any of the choices; omitted ones stay. */
export type WasmTrainingKernelOptions = Partial<WasmKernelChoices>;

const CHOICE_KEYS = ["conv2d", "conv2dBackpropInput", "conv2dBackpropFilter"] as const;

let choices: WasmKernelChoices = {
  conv2d: "own",
  conv2dBackpropInput: "own",
  conv2dBackpropFilter: "own",
};

/** tfjs-backend-wasm's own `Conv2D` (restored when `conv2d` goes back to "xnnpack"). */
let tfjsConv2D: tf.KernelConfig | undefined;

/** tfjs-backend-wasm's own `Add`, which {@linkcode addWasm} falls back on. */
let tfjsAdd: tf.KernelConfig | undefined;

/** The options, checked: an object with only the choice keys, each "xnnpack" or "own". */
function checkOptions(options: unknown): WasmTrainingKernelOptions {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(
      `registerWasmTrainingKernels: options must be an object like { conv2d: "own" }, got ${
        JSON.stringify(options)
      }`,
    );
  }
  for (const [key, value] of Object.entries(options)) {
    if (!(CHOICE_KEYS as readonly string[]).includes(key)) {
      throw new RangeError(
        `registerWasmTrainingKernels: unknown option ${JSON.stringify(key)}; the options are ${
          CHOICE_KEYS.join(", ")
        }`,
      );
    }
    if (value !== undefined && value !== "xnnpack" && value !== "own") {
      throw new RangeError(
        `registerWasmTrainingKernels: ${key} must be "xnnpack" or "own", got ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  return options as WasmTrainingKernelOptions;
}

function register(kernelName: string, kernelFunc: tf.KernelFunc): void {
  if (tf.getKernel(kernelName, "wasm") !== undefined) tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc });
}

/**
 * Installs {@linkcode addWasm} as `Add`, with tfjs-backend-wasm's own kernel (kept from before the
 * first replacement) for the cases it does not take and that kernel's set-up, which binds its C++
 * entry point when a backend initialises.
 */
function registerAdd(): void {
  const current = tf.getKernel("Add", "wasm");
  if (tfjsAdd === undefined && current !== undefined && current.kernelFunc !== ownAdd) {
    tfjsAdd = current;
  }
  if (tfjsAdd === undefined || current?.kernelFunc === ownAdd) return;
  tf.unregisterKernel("Add", "wasm");
  tf.registerKernel({
    kernelName: "Add",
    backendName: "wasm",
    kernelFunc: ownAdd,
    ...(tfjsAdd.setupFunc === undefined ? {} : { setupFunc: tfjsAdd.setupFunc }),
  });
}

/** The registered `Add`: ours, falling back on tfjs-backend-wasm's. */
const ownAdd: tf.KernelFunc = (args) =>
  addWasm(args as Parameters<typeof addWasm>[0], (tfjsAdd as tf.KernelConfig).kernelFunc);

/** Installs the chosen `Conv2D`: ours, or tfjs-backend-wasm's (set up on a live backend again). */
function registerConv2D(choice: WasmKernelChoice, backend: unknown): void {
  const current = tf.getKernel("Conv2D", "wasm");
  // tfjs-backend-wasm registers its Conv2D once, at import: keep the first one seen.
  if (tfjsConv2D === undefined && current?.kernelFunc !== (conv2dOwnWasm as unknown)) {
    tfjsConv2D = current;
  }
  if (choice === "own") {
    register("Conv2D", conv2dOwnWasm as unknown as tf.KernelFunc);
    return;
  }
  if (current?.kernelFunc === (conv2dOwnWasm as unknown)) tf.unregisterKernel("Conv2D", "wasm");
  if (tfjsConv2D !== undefined && tf.getKernel("Conv2D", "wasm") === undefined) {
    tf.registerKernel(tfjsConv2D);
    // Its set-up (binding the C++ entry point) runs when a backend initialises: a backend that
    // initialised while ours was registered has not run it.
    if (backend !== undefined) tfjsConv2D.setupFunc?.(backend as tf.KernelBackend);
  }
}

/**
 * Installs fast training kernels on the wasm backend, replacing tfjs-backend-wasm's own where it
 * has them: `Conv2D`, `Conv2DBackpropFilter` and `Conv2DBackpropInput` (our own kernels, or
 * XNNPACK's forward convolution),
 * `BatchMatMul` with transposes and batches on XNNPACK's fast path, `UnsortedSegmentSum`, an
 * `Identity` that shares data instead of copying it (the tape clones every tensor it saves), the
 * single-pass per-channel reductions (`channelMoments`, `channelGradSums`), the fused batch
 * norm's training forward, backward and inference passes (`BatchNorm` with its residual add and
 * ReLU), one-kernel optimizer steps over every parameter (`Sgd`, `AdamW`), and an `Add` that
 * splits large float32 sums of one shape over the backend's threads (the gradient tape's, which
 * tfjs-backend-wasm runs on one thread; other sums still go to its own kernel).
 * `conv2d`, `conv2dBackpropInput` and `conv2dBackpropFilter` choose between our own WASM SIMD
 * kernels for the three convolutions (the default: relaxed-SIMD multiply-adds, threaded on the
 * backend's pool) and XNNPACK's (tfjs-backend-wasm's `Conv2D`, and the two gradients built from
 * it). All match the cpu backend; switching changes the order of float summation, so results
 * differ in the last bits.
 * If the wasm backend is already initialised it also guards its allocator so that an exhausted
 * heap throws a {@linkcode WasmHeapError} (the kernels install the guard on first use otherwise).
 * Idempotent; call it after `tf.setBackend("wasm")` (selectBackend does).
 *
 * @param options The kernel choices to change (omitted ones keep their current choice, our own
 *   kernels at first).
 * @throws {TypeError} If `options` is not an object.
 * @throws {RangeError} If it has an unknown key, or a choice is neither "xnnpack" nor "own".
 * @example
 * ```ts
 * import { registerWasmTrainingKernels, wasmKernelChoices } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * registerWasmTrainingKernels();
 * registerWasmTrainingKernels();
 * assert.ok(tf.getKernel("Conv2DBackpropFilter", "wasm") !== undefined);
 * registerWasmTrainingKernels({ conv2d: "xnnpack", conv2dBackpropFilter: "xnnpack" });
 * assert.deepEqual(wasmKernelChoices(), {
 *   conv2d: "xnnpack",
 *   conv2dBackpropInput: "own",
 *   conv2dBackpropFilter: "xnnpack",
 * });
 * registerWasmTrainingKernels({ conv2d: "own", conv2dBackpropFilter: "own" });
 * assert.throws(() => registerWasmTrainingKernels({ conv2d: "fast" as "own" }), /conv2d must be/);
 * ```
 */
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): void {
  const given = checkOptions(options);
  const next: WasmKernelChoices = {
    conv2d: given.conv2d ?? choices.conv2d,
    conv2dBackpropInput: given.conv2dBackpropInput ?? choices.conv2dBackpropInput,
    conv2dBackpropFilter: given.conv2dBackpropFilter ?? choices.conv2dBackpropFilter,
  };
  const registry = (tf.engine() as unknown as { registry: Record<string, { wasm?: WasmModule }> })
    .registry;
  const backend = registry["wasm"];
  if (!registered || CHOICE_KEYS.some((k) => next[k] !== choices[k])) {
    registered = true;
    choices = next;
    const funcs: Record<string, tf.KernelFunc> = {
      ...kernelFuncs,
      ...(next.conv2dBackpropFilter === "own"
        ? { Conv2DBackpropFilter: conv2dBackpropFilterOwnWasm as unknown as tf.KernelFunc }
        : {}),
      ...(next.conv2dBackpropInput === "own"
        ? { Conv2DBackpropInput: conv2dBackpropInputOwnWasm as unknown as tf.KernelFunc }
        : {}),
    };
    for (const kernelName of WASM_TRAINING_KERNELS) register(kernelName, funcs[kernelName]);
    registerConv2D(next.conv2d, backend);
  }
  // On every call: tfjs-backend-wasm's Add exists only once that package is imported.
  registerAdd();
  const wasm = backend?.wasm;
  if (wasm) installHeapGuard(wasm);
}

/**
 * The implementations {@linkcode registerWasmTrainingKernels} last registered for the three
 * convolution kernels.
 *
 * @returns A copy of the current choices.
 * @example
 * ```ts
 * import { wasmKernelChoices } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const c = wasmKernelChoices();
 * assert.deepEqual(Object.keys(c), ["conv2d", "conv2dBackpropInput", "conv2dBackpropFilter"]);
 * ```
 */
export function wasmKernelChoices(): WasmKernelChoices {
  return { ...choices };
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
  return choices.conv2dBackpropFilter;
}
