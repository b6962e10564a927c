/**
 * `Identity` for the wasm backend without a copy. tfjs-backend-wasm's own copies the tensor on
 * the heap, and the engine runs `Identity` for every tensor the gradient tape saves (each
 * convolution's input and filter, each ReLU's input, each custom gradient's saved tensors): a
 * training step spent a few percent of its time copying activations. This one shares the data
 * and counts a reference, as the cpu backend's `Identity` and the wasm backend's own `Reshape`
 * do. That is safe because no kernel writes into its inputs: tensors are immutable and
 * `Variable.assign` swaps the data rather than overwriting it.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/** The part of the wasm backend that counts references to a tensor's data. */
interface RefCounting {
  incRef(dataId: unknown): void;
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels}).
 *
 * @param args The tensor `x` (any dtype) and the backend.
 * @returns A tensor info sharing `x`'s data, shape and dtype.
 */
export function identityWasm(
  args: { inputs: { x: tf.TensorInfo }; backend: unknown },
): tf.TensorInfo {
  const { x } = args.inputs;
  (args.backend as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}
