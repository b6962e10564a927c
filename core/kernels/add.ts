/**
 * `Add` for the wasm backend on the own-kernel pool. The gradient tape adds the two gradients of
 * every tensor that two operations read (each residual block's input), whole activations each:
 * 17 adds per ResNet-50 x0.25 training step, 16-17 ms of it on one thread or two, because
 * tfjs-backend-wasm's `Add` runs on one thread (2M floats: 1.64 ms on one thread, 1.50 on two).
 * This kernel adds float32 operands of one shape with our own WASM SIMD kernel (`src/add.c`),
 * split over the backend's threads like the other own kernels; every other case (broadcasting,
 * other dtypes, small tensors) goes to tfjs-backend-wasm's own kernel. A float32 sum has one
 * correct result whoever computes it, so the results are the same bits as tfjs's. Measured (Intel
 * Xeon host, alternating with tfjs's kernel in one process): 1.02-1.22x on one thread, 1.73-2.10x
 * on two, for 262144 to 2M floats.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { callOwnKernel } from "./_own_kernels.ts";
import { Scratch, sizeOf, type WasmBackend } from "./_wasm.ts";

/**
 * Fewest elements that the own kernel adds; smaller sums go to tfjs-backend-wasm's `Add`, whose
 * call costs a few microseconds where the pool's costs a synchronisation.
 *
 * @example
 * ```ts
 * import { ADD_OWN_MIN_SIZE } from "./add.ts";
 * import assert from "node:assert/strict";
 * // 64 KiB of floats: a ResNet's activations are larger, a loss's logits far smaller.
 * assert.equal(ADD_OWN_MIN_SIZE * 4, 65536);
 * ```
 */
export const ADD_OWN_MIN_SIZE = 16384;

interface Args {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  backend: unknown;
  attrs?: unknown;
}

/** Whether {@linkcode addWasm} adds `a` and `b` itself (float32, one shape, large enough). */
function ownCase(a: tf.TensorInfo, b: tf.TensorInfo): boolean {
  return a.dtype === "float32" && b.dtype === "float32" &&
    tf.util.arraysEqual(a.shape, b.shape) && sizeOf(a.shape) >= ADD_OWN_MIN_SIZE;
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels} with tfjs-backend-wasm's
 * own `Add` as `fallback`).
 *
 * @param args `a` and `b`, and the backend.
 * @param fallback tfjs-backend-wasm's `Add` kernel function, for every case but float32 operands
 *   of one shape with at least {@linkcode ADD_OWN_MIN_SIZE} elements.
 * @returns `a + b`.
 * @example
 * ```ts
 * import { registerWasmTrainingKernels } from "@mfi/core";
 * import { ADD_OWN_MIN_SIZE, addWasm } from "./add.ts";
 * import "@tensorflow/tfjs-backend-wasm";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("wasm");
 * registerWasmTrainingKernels(); // `tf.add` on wasm now runs addWasm
 * const a = tf.fill([ADD_OWN_MIN_SIZE], 1.5);
 * const noFallback = () => {
 *   throw new Error("float32 operands of one shape never reach the fallback");
 * };
 * const info = addWasm({ inputs: { a, b: a }, backend: tf.backend() }, noFallback) as tf.TensorInfo;
 * const y = tf.engine().makeTensorFromTensorInfo(info);
 * assert.deepEqual(Array.from((await y.data()).slice(0, 2)), [3, 3]);
 * const z = tf.add(tf.tensor1d([1, 2]), tf.scalar(1)); // small and broadcast: tfjs's own kernel
 * assert.deepEqual(Array.from(await z.data()), [2, 3]);
 * tf.dispose([a, y, z]);
 * await tf.setBackend("cpu");
 * ```
 */
export function addWasm(args: Args, fallback: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const { a, b } = args.inputs;
  if (!ownCase(a, b)) return fallback(args as Parameters<tf.KernelFunc>[0]);
  const backend = args.backend as WasmBackend;
  const scratch = new Scratch(backend);
  try {
    const [info, y] = scratch.output([...a.shape]);
    try {
      callOwnKernel(backend.wasm, "add_f32", [
        scratch.of(a).offset,
        scratch.of(b).offset,
        y.offset,
        y.size,
      ]);
    } catch (e) {
      backend.disposeData(info.dataId);
      throw e;
    }
    return info;
  } finally {
    scratch.release();
  }
}
