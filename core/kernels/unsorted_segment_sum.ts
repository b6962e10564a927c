/**
 * `UnsortedSegmentSum` for the wasm backend (missing in tfjs-backend-wasm; it is the gradient of
 * `tf.gather`): `out[s] = sum of x[i] over i with segmentIds[i] = s`, ids outside
 * `[0, numSegments)` dropped as TensorFlow does.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { Scratch, sizeOf, type WasmBackend } from "./_wasm.ts";

interface Args {
  inputs: { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  backend: unknown;
  attrs: { numSegments: number };
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels}).
 *
 * @param args x `[...ids.shape, ...inner]` (float32 or int32), int32 segment ids and the number
 *   of segments.
 * @returns `[numSegments, ...inner]`, of x's dtype.
 * @throws {Error} On ids that are not int32 or do not prefix x's shape.
 */
export function unsortedSegmentSumWasm(args: Args): tf.TensorInfo {
  const { x, segmentIds } = args.inputs;
  const backend = args.backend as WasmBackend;
  const { numSegments } = args.attrs;
  if (segmentIds.dtype !== "int32") {
    throw new Error(`UnsortedSegmentSum: segmentIds must be int32, got ${segmentIds.dtype}`);
  }
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32 x, got ${x.dtype}`);
  }
  const idShape = segmentIds.shape;
  if (idShape.some((d, i) => x.shape[i] !== d)) {
    throw new Error(
      `UnsortedSegmentSum: segmentIds shape [${idShape}] must prefix x shape [${x.shape}]`,
    );
  }
  const inner = sizeOf(x.shape.slice(idShape.length));
  const rows = sizeOf(idShape);
  const outShape = [numSegments, ...x.shape.slice(idShape.length)];
  const out = backend.makeOutput(outShape, x.dtype);
  const scratch = new Scratch(backend);
  const o = scratch.of(out);
  const xs = scratch.of(x);
  const ids = scratch.of(segmentIds);
  const heap = x.dtype === "float32" ? scratch.f32 : scratch.i32;
  const idHeap = scratch.i32;
  heap.fill(0, o.offset / 4, o.offset / 4 + o.size);
  for (let r = 0; r < rows; r++) {
    const s = idHeap[ids.offset / 4 + r];
    if (s < 0 || s >= numSegments) continue;
    const src = xs.offset / 4 + r * inner;
    const dst = o.offset / 4 + s * inner;
    for (let j = 0; j < inner; j++) heap[dst + j] += heap[src + j];
  }
  return out;
}
