/**
 * Private plumbing shared by the WASM training kernels: typed access to the tfjs wasm backend's
 * emscripten module, direct calls of its XNNPACK-backed C++ kernels by tensor id, scratch tensors
 * and heap views.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { installHeapGuard } from "./_heap.ts";

/** The parts of the emscripten module of tfjs-backend-wasm that the kernels use. */
export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAPF32: Float32Array;
  HEAP32: Int32Array;
  cwrap(name: string, ret: null | string, args: string[]): (...args: unknown[]) => unknown;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  tfjs: {
    registerTensor(id: number, size: number, offset: number): void;
    disposeData(id: number): void;
  };
}

/** Per-tensor record of the wasm backend. */
export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: string;
}

/** The parts of tfjs-backend-wasm's `BackendWasm` that the kernels use. */
export interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: unknown): WasmTensorData };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: unknown, force?: boolean): boolean;
}

type Fn = (...args: unknown[]) => unknown;

/** Direct entry points into the wasm binary, bound to one backend instance. */
export interface WasmOps {
  readonly backend: WasmBackend;
  /** XNNPACK convolution (NHWC input, HWIO filter), explicit padding, into `outId`. */
  conv2d(p: {
    xId: number;
    batch: number;
    height: number;
    width: number;
    filterId: number;
    filterHeight: number;
    filterWidth: number;
    padTop: number;
    padRight: number;
    padBottom: number;
    padLeft: number;
    dilationHeight: number;
    dilationWidth: number;
    strideHeight: number;
    strideWidth: number;
    inChannels: number;
    outChannels: number;
    outId: number;
  }): void;
  /** `[1, m, k] @ [1, k, n]` through XNNPACK's fully-connected operator (no transposes). */
  matmul(aId: number, m: number, k: number, bId: number, n: number, outId: number): void;
  /** Float32 transpose of `x` (shape `shape`) by `perm` into `out`. */
  transpose(
    x: HeapTensor,
    shape: readonly number[],
    perm: readonly number[],
    out: HeapTensor,
  ): void;
}

const opsByBackend = new WeakMap<object, WasmOps>();

function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/**
 * Binds (once per backend instance) the wasm entry points the kernels call, and installs the
 * heap guard.
 */
export function wasmOps(backend: WasmBackend): WasmOps {
  const cached = opsByBackend.get(backend);
  if (cached) return cached;
  const w = backend.wasm;
  installHeapGuard(w);
  const conv = w.cwrap("Conv2D", null, new Array(19).fill("number")) as Fn;
  const bmm = w.cwrap("BatchMatMul", null, [
    "number",
    "array",
    "number",
    "number",
    "array",
    "number",
    "number",
    "number",
    "number",
  ]) as Fn;
  const tr = w.cwrap("Transpose", null, [
    "number",
    "array",
    "number",
    "number",
    "number",
    "array",
    "number",
  ]) as Fn;
  const ops: WasmOps = {
    backend,
    conv2d(p) {
      conv(
        p.xId,
        p.batch,
        p.height,
        p.width,
        p.filterId,
        p.filterHeight,
        p.filterWidth,
        p.padTop,
        p.padRight,
        p.padBottom,
        p.padLeft,
        0,
        p.dilationHeight,
        p.dilationWidth,
        p.strideHeight,
        p.strideWidth,
        p.inChannels,
        p.outChannels,
        p.outId,
      );
    },
    matmul(aId, m, k, bId, n, outId) {
      bmm(aId, shapeBytes([1, m, k]), 3, bId, shapeBytes([1, k, n]), 3, 0, 0, outId);
    },
    transpose(x, shape, perm, out) {
      if (shape.length === 4 && perm.join() === "3,1,2,0") {
        swapOuterInner(
          w.HEAPF32,
          x.offset / 4,
          out.offset / 4,
          shape[0],
          shape[1] * shape[2],
          shape[3],
        );
        return;
      }
      // Drop unit dimensions first: the lower-rank transpose is faster (as tfjs does).
      const keep = shape.map((d, i) => d !== 1 ? i : -1).filter((i) => i >= 0);
      const reducedShape = keep.map((i) => shape[i]);
      const keptPerm = perm.filter((p) => shape[p] !== 1);
      const rank = keptPerm.map((p) => keep.indexOf(p));
      if (rank.every((p, i) => p === i)) {
        w.HEAPF32.copyWithin(out.offset / 4, x.offset / 4, x.offset / 4 + x.size);
        return;
      }
      // [a, b] -> [b, a] and [a, m, b] -> [b, m, a] (after dropping unit dims): tfjs's generic
      // C++ transpose is several times slower on these than a JS loop writing rows of `a`.
      if (rank.length === 2) {
        swapOuterInner(
          w.HEAPF32,
          x.offset / 4,
          out.offset / 4,
          reducedShape[0],
          1,
          reducedShape[1],
        );
        return;
      }
      if (rank.length === 3 && rank[0] === 2 && rank[1] === 1 && rank[2] === 0) {
        const [a, m, b] = reducedShape;
        swapOuterInner(w.HEAPF32, x.offset / 4, out.offset / 4, a, m, b);
        return;
      }
      tr(
        x.id,
        shapeBytes(reducedShape),
        reducedShape.length,
        0,
        out.id,
        shapeBytes(rank),
        rank.length,
      );
    },
  };
  opsByBackend.set(backend, ops);
  return ops;
}

/** A float32 buffer on the wasm heap with a tensor id the C++ kernels accept. */
export interface HeapTensor {
  /** The backend's tensor id (what the C++ kernels take). */
  readonly id: number;
  /** Byte offset on the wasm heap. */
  readonly offset: number;
  /** Element count. */
  readonly size: number;
}

/**
 * Scratch space for one kernel call: outputs and temporaries allocated through the backend,
 * views into existing buffers, all released by {@linkcode Scratch.release} except outputs.
 */
export class Scratch {
  readonly #backend: WasmBackend;
  readonly #temps: tf.TensorInfo[] = [];
  readonly #views: number[] = [];

  constructor(backend: WasmBackend) {
    this.#backend = backend;
  }

  /** The backend the scratch allocates on. */
  get backend(): WasmBackend {
    return this.#backend;
  }

  /** Describes an existing tensor of the backend. */
  of(t: tf.TensorInfo): HeapTensor {
    const d = this.#backend.dataIdMap.get(t.dataId);
    return { id: d.id, offset: d.memoryOffset, size: sizeOf(t.shape) };
  }

  /** Allocates a float32 output tensor that the caller returns from the kernel. */
  output(shape: number[]): [tf.TensorInfo, HeapTensor] {
    const info = this.#backend.makeOutput(shape, "float32");
    return [info, this.of(info)];
  }

  /** Allocates a temporary float32 tensor, freed by `release`. */
  temp(shape: number[]): HeapTensor {
    const info = this.#backend.makeOutput(shape, "float32");
    this.#temps.push(info);
    return this.of(info);
  }

  /** Registers a view of `size` floats at byte `offset` (no ownership), dropped by `release`. */
  view(offset: number, size: number): HeapTensor {
    const id = this.#backend.dataIdNextNumber++;
    this.#backend.wasm.tfjs.registerTensor(id, size, offset);
    this.#views.push(id);
    return { id, offset, size };
  }

  /** The current float view of the heap (re-read after any allocation: the heap may grow). */
  get f32(): Float32Array {
    return this.#backend.wasm.HEAPF32;
  }

  /** The current int32 view of the heap. */
  get i32(): Int32Array {
    return this.#backend.wasm.HEAP32;
  }

  /** Frees temporaries and drops views (their cached XNNPACK operators go with them). */
  release(): void {
    for (const id of this.#views) this.#backend.wasm.tfjs.disposeData(id);
    for (const t of this.#temps) this.#backend.disposeData(t.dataId);
    this.#views.length = 0;
    this.#temps.length = 0;
  }
}

/**
 * `dst[j, p, i] = src[i, p, j]` for `src` of shape `[a, m, b]` (float offsets into `heap`): writes
 * runs of 16 along `a` contiguously, reading with stride `m b`.
 */
function swapOuterInner(
  heap: Float32Array,
  src: number,
  dst: number,
  a: number,
  m: number,
  b: number,
): void {
  const block = 16;
  const step = m * b;
  for (let p = 0; p < m; p++) {
    for (let i0 = 0; i0 < a; i0 += block) {
      const i1 = Math.min(a, i0 + block);
      for (let j = 0; j < b; j++) {
        const d = dst + (j * m + p) * a;
        let s = src + (i0 * m + p) * b + j;
        for (let i = i0; i < i1; i++) {
          heap[d + i] = heap[s];
          s += step;
        }
      }
    }
  }
}

/** Product of a shape's dimensions. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
