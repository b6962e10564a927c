/**
 * `BatchMatMul` for the wasm backend with every case on XNNPACK's fast path. tfjs-backend-wasm
 * only uses XNNPACK for one un-transposed `[1, m, k] @ [1, k, n]` product and falls back to a
 * naive loop otherwise; here transposed operands are transposed explicitly first and batches run
 * as a sequence of fast products on views of the operands.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type HeapTensor, Scratch, sizeOf, type WasmBackend, wasmOps } from "./_wasm.ts";

interface Args {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  backend: unknown;
  attrs: { transposeA: boolean; transposeB: boolean };
}

/**
 * The kernel function (registered by {@linkcode registerWasmTrainingKernels}).
 *
 * @param args `a` `[...batch, m, k]` (or `[..., k, m]` with `transposeA`), `b` `[...batch, k, n]`
 *   (or `[..., n, k]` with `transposeB`); batch dimensions broadcast.
 * @returns `op(a) @ op(b)`, `[...batch, m, n]`.
 * @throws {Error} On non-float32 inputs, mismatched inner sizes or unbroadcastable batches.
 */
export function batchMatMulWasm(args: Args): tf.TensorInfo {
  const { a, b } = args.inputs;
  const backend = args.backend as WasmBackend;
  const { transposeA, transposeB } = args.attrs;
  if (a.dtype !== "float32" || b.dtype !== "float32") {
    throw new Error(`BatchMatMul on wasm needs float32 inputs, got ${a.dtype} and ${b.dtype}`);
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const ka = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (ka !== kb) {
    throw new Error(
      `BatchMatMul: inner sizes differ (${ka} vs ${kb}) for shapes [${a.shape}] and [${b.shape}]` +
        ` with transposeA=${transposeA}, transposeB=${transposeB}`,
    );
  }
  const k = ka;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  const batchA = sizeOf(a.shape.slice(0, -2));
  const batchB = sizeOf(b.shape.slice(0, -2));
  const batch = sizeOf(outer);
  if (!(batchA === batch || batchA === 1) || !(batchB === batch || batchB === 1)) {
    throw new Error(
      `BatchMatMul on wasm broadcasts only whole batches of size 1, got [${a.shape}] and [${b.shape}]`,
    );
  }
  const ops = wasmOps(backend);
  const scratch = new Scratch(backend);
  try {
    const [out, outT] = scratch.output([...outer, m, n]);
    if (outT.size === 0) return out;
    if (k === 0) {
      scratch.f32.fill(0, outT.offset / 4, outT.offset / 4 + outT.size);
      return out;
    }
    // Row-major operands [batch, m, k] and [batch, k, n].
    let aT: HeapTensor = scratch.of(a);
    if (transposeA) {
      const t = scratch.temp([batchA, m, k]);
      ops.transpose(aT, [batchA, k, m], [0, 2, 1], t);
      aT = t;
    }
    let bT: HeapTensor = scratch.of(b);
    if (transposeB) {
      const t = scratch.temp([batchB, k, n]);
      ops.transpose(bT, [batchB, n, k], [0, 2, 1], t);
      bT = t;
    }
    if (batch === 1) {
      ops.matmul(aT.id, m, k, bT.id, n, outT.id);
      return out;
    }
    // B is XNNPACK's packed weight: one view per distinct B matrix, packed once.
    const bShared = batchB === 1 ? bT : undefined;
    for (let i = 0; i < batch; i++) {
      const av = batchA === 1 ? aT : scratch.view(aT.offset + i * m * k * 4, m * k);
      const bv = bShared ?? scratch.view(bT.offset + i * k * n * 4, k * n);
      const ov = scratch.view(outT.offset + i * m * n * 4, m * n);
      ops.matmul(av.id, m, k, bv.id, n, ov.id);
    }
    return out;
  } finally {
    scratch.release();
  }
}
