/**
 * Our own WASM SIMD kernels (`src/*.c`, built by `deno task build:kernels` into
 * `_mfi_kernels_bytes.ts`), instantiated on tfjs-backend-wasm's own memory so that they read and
 * write its tensors in place: the binary importing a shared memory for the threaded build, the
 * one importing a plain memory otherwise; each in its relaxed-SIMD build (`f32x4.relaxed_madd`)
 * where the runtime validates it, else in the plain-SIMD one. The bytes are part of the module
 * graph: loading them needs no permission.
 *
 * Every kernel export ends with `(part, parts)` and computes only that share of its work (see
 * `src/simd.h`); {@linkcode callOwnKernel} is the one place that calls them: on the threaded
 * backend (a shared memory and an XNNPACK pool of more than one thread) it spreads the shares over
 * a {@linkcode KernelPool} of as many agents as the backend has threads (the calling thread and
 * workers that instantiate the same module on the same memory), else it runs the single share
 * `(0, 1)` on the calling thread.
 *
 * @module
 */
import {
  MFI_KERNELS_PLAIN,
  MFI_KERNELS_RELAXED,
  MFI_KERNELS_RELAXED_SHARED,
  MFI_KERNELS_SHARED,
} from "./_mfi_kernels_bytes.ts";
import { KernelPool, MAX_POOL_THREADS } from "./_pool.ts";

/** The exports of the kernel binary (pointers are byte offsets into the backend's heap). */
export interface OwnKernels {
  /** `dw = Conv2DBackpropFilter(x, dy)`, NHWC / HWIO, zeroing dw first. */
  conv2d_backprop_filter_f32(
    x: number,
    dy: number,
    dw: number,
    n: number,
    h: number,
    w: number,
    cin: number,
    ho: number,
    wo: number,
    cout: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    part: number,
    parts: number,
  ): void;
  /**
   * The same over `groups` consecutive image groups: group 0's sums into dw, group g's into its
   * partial `pw + 4 (g - 1) kh kw cin cout` (bytes), each zeroed first.
   */
  conv2d_backprop_filter_groups_f32(
    x: number,
    dy: number,
    dw: number,
    pw: number,
    n: number,
    h: number,
    w: number,
    cin: number,
    ho: number,
    wo: number,
    cout: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    groups: number,
    part: number,
    parts: number,
  ): void;
  /** `dw += pw[0] + pw[1] + ...`, the `groups - 1` partials of `size` floats, in order. */
  conv2d_backprop_filter_sum_f32(
    dw: number,
    pw: number,
    size: number,
    groups: number,
    part: number,
    parts: number,
  ): void;
  /** Packs a (sub-)filter into blocks of 8 output channels, `[cout/8][kh][kw][cin][8]`. */
  conv2d_pack_filter_f32(
    f: number,
    fp: number,
    kh: number,
    kw: number,
    cin: number,
    cout: number,
    base: number,
    sfy: number,
    sfx: number,
    sci: number,
    sco: number,
    part: number,
    parts: number,
  ): void;
  /**
   * Every rectangle of a convolution in one call: `count` rectangles of 11 ints at `rects`
   * (`window, bstride, frow, kh, kw, oh, ow, oy0, ox0, ry, rx`), each a correlation with a window
   * of the packed filter at `fp` (`src/conv2d.c`, `_conv_own_plan.ts`).
   */
  conv2d_rects_f32(
    x: number,
    fp: number,
    y: number,
    rects: number,
    count: number,
    n: number,
    hb: number,
    wb: number,
    cin: number,
    cout: number,
    sy: number,
    sx: number,
    yh: number,
    yw: number,
    ty: number,
    tx: number,
    part: number,
    parts: number,
  ): void;
  /**
   * Batch norm (src/batch_norm.c): per block of `blockRows` rows, the block's per-channel float64
   * `sum(x)` then `sum(x^2)` into its slot `blocks + 16 c b` (bytes) of 2c doubles; `blocks` holds
   * as many slots again after those (the blocks' accumulators while they run).
   */
  bn_stats_f32(
    x: number,
    blocks: number,
    rows: number,
    c: number,
    blockRows: number,
    part: number,
    parts: number,
  ): void;
  /**
   * `y = relu?((x - center) * scale + shift + residual?)` (residual 0: none),
   * `css = [center, scale, shift]`.
   */
  bn_apply_f32(
    x: number,
    residual: number,
    y: number,
    css: number,
    rows: number,
    c: number,
    relu: number,
    part: number,
    parts: number,
  ): void;
  /**
   * `g = dy * (y > 0)` (y 0: no mask) into dres (0: none); per block of `blockRows` rows, the
   * block's `sum(g)` then `sum(g x)` into its slot of 2c doubles (as `bn_stats_f32`).
   */
  bn_grad_sums_f32(
    dy: number,
    x: number,
    y: number,
    dres: number,
    blocks: number,
    rows: number,
    c: number,
    blockRows: number,
    part: number,
    parts: number,
  ): void;
  /**
   * `dx = k (g - gmean) + b (x - mean)`, `g = dy * (y > 0)` (y 0: no mask),
   * `kbmg = [k, b, mean, gmean]`.
   */
  bn_grad_dx_f32(
    dy: number,
    y: number,
    x: number,
    dx: number,
    kbmg: number,
    rows: number,
    c: number,
    part: number,
    parts: number,
  ): void;
  /** `y = a + b` over `n` floats (src/add.c). */
  add_f32(a: number, b: number, y: number, n: number, part: number, parts: number): void;
  /** One SGD step over a table of entries (src/optimizer_step.c). */
  sgd_step_f32(
    ints: number,
    floats: number,
    count: number,
    lr: number,
    momentum: number,
    nesterov: number,
    part: number,
    parts: number,
  ): void;
  /** One AdamW step over a table of entries (src/optimizer_step.c). */
  adamw_step_f32(
    ints: number,
    floats: number,
    count: number,
    b1: number,
    b2: number,
    c1: number,
    c2: number,
    eps: number,
    step: number,
    bc2: number,
    part: number,
    parts: number,
  ): void;
}

/** The name of a kernel export. */
export type OwnKernelName = keyof OwnKernels;

/** An export's arguments without the trailing `(part, parts)`. */
export type OwnKernelArgs<K extends OwnKernelName> = Parameters<OwnKernels[K]> extends
  [...infer A, number, number] ? A : never;

/** The parts of the backend's emscripten module that hold its memory and its thread count. */
interface MemoryOwner {
  /** The threaded build's (shared) memory. */
  wasmMemory?: WebAssembly.Memory;
  /** The single-threaded builds export theirs. */
  asm?: { memory?: WebAssembly.Memory };
  /** tfjs's C++ entry points (`getThreadsCount`: the XNNPACK pool's threads, caller included). */
  tfjs?: { getThreadsCount?: () => number };
}

type Variant = "plain" | "shared" | "relaxed" | "relaxedShared";
const modules: Partial<Record<Variant, WebAssembly.Module>> = {};
const instances = new WeakMap<WebAssembly.Memory, OwnKernels>();
/** The pool of each shared memory (null: run single shares, e.g. after the pool was disposed). */
const pools = new WeakMap<WebAssembly.Memory, KernelPool | null>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/**
 * The kernel binary's bytes: `shared` for a shared memory, `relaxed` for the relaxed-SIMD build.
 */
export function ownKernelBytes(shared: boolean, relaxed = false): Uint8Array<ArrayBuffer> {
  return decode(
    relaxed
      ? (shared ? MFI_KERNELS_RELAXED_SHARED : MFI_KERNELS_RELAXED)
      : (shared ? MFI_KERNELS_SHARED : MFI_KERNELS_PLAIN),
  );
}

let relaxedValid: boolean | undefined;

/** Whether this runtime validates the relaxed-SIMD binaries (checked once). */
export function ownKernelsRelaxed(): boolean {
  return relaxedValid ??= WebAssembly.validate(ownKernelBytes(false, true));
}

function memoryOf(wasm: object): WebAssembly.Memory {
  const owner = wasm as MemoryOwner;
  const memory = owner.wasmMemory ?? owner.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error(
      "Cannot run our own WASM kernels (batch norm, optimizer steps, convolutions): the " +
        "tfjs-backend-wasm module exposes no WebAssembly.Memory (neither wasmMemory nor " +
        "asm.memory). @mfi/core supports @tensorflow/tfjs-backend-wasm 4.22.0; install that " +
        'version, or train on the "cpu" backend.',
    );
  }
  return memory;
}

/** The compiled kernel module for a memory of this kind (compiled once per kind). */
function kernelModule(memory: WebAssembly.Memory): WebAssembly.Module {
  const shared = memory.buffer instanceof SharedArrayBuffer;
  const relaxed = ownKernelsRelaxed();
  const kind: Variant = relaxed
    ? (shared ? "relaxedShared" : "relaxed")
    : (shared ? "shared" : "plain");
  return modules[kind] ??= new WebAssembly.Module(ownKernelBytes(shared, relaxed));
}

/**
 * The kernels, instantiated (once per memory) on the memory of the backend's module.
 *
 * @throws {Error} If the module exposes no WebAssembly.Memory (an unknown tfjs-backend-wasm build).
 */
export function ownKernels(wasm: object): OwnKernels {
  const memory = memoryOf(wasm);
  const cached = instances.get(memory);
  if (cached) return cached;
  const instance = new WebAssembly.Instance(kernelModule(memory), { env: { memory } });
  const kernels = instance.exports as unknown as OwnKernels;
  instances.set(memory, kernels);
  return kernels;
}

/** Threads of the backend's XNNPACK pool (the calling thread included); 1 if it does not say. */
function backendThreads(wasm: object): number {
  const threads = (wasm as MemoryOwner).tfjs?.getThreadsCount?.();
  return typeof threads === "number" && Number.isInteger(threads) && threads > 1
    ? Math.min(threads, MAX_POOL_THREADS)
    : 1;
}

/**
 * The worker pool of the backend's module if one was started (no pool is created here).
 *
 * @param wasm The backend's emscripten module.
 * @returns The pool, or undefined when none is running.
 */
export function startedOwnKernelPool(wasm: object): KernelPool | undefined {
  return pools.get(memoryOf(wasm)) ?? undefined;
}

/**
 * The worker pool that runs the own kernels of the backend's module: created on first use, with
 * as many agents as the backend has threads; undefined on a plain memory, a single-threaded
 * backend, or once {@linkcode disposeOwnKernelPool} has run for this module.
 *
 * @param wasm The backend's emscripten module.
 * @returns The pool, or undefined when kernels run as one share on the calling thread.
 * @throws {Error} If the module exposes no WebAssembly.Memory.
 */
export function ownKernelPool(wasm: object): KernelPool | undefined {
  const memory = memoryOf(wasm);
  let pool = pools.get(memory);
  if (pool === undefined) {
    const threads = memory.buffer instanceof SharedArrayBuffer ? backendThreads(wasm) : 1;
    pool = threads > 1 ? new KernelPool(kernelModule(memory), memory, threads) : null;
    pools.set(memory, pool);
  }
  return pool ?? undefined;
}

/**
 * Ends the worker pool of the backend's module, if it has one (idempotent); later kernel calls on
 * that module run single-threaded. Called when the backend is torn down (its memory would
 * otherwise stay referenced by the workers).
 *
 * @param wasm The backend's emscripten module.
 */
export function disposeOwnKernelPool(wasm: object): void {
  const owner = wasm as MemoryOwner;
  const memory = owner.wasmMemory ?? owner.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return;
  pools.get(memory)?.dispose();
  pools.set(memory, null);
}

/** Set by {@linkcode setOwnKernelsOnCallingThread}: every call runs as the single share. */
let callingThreadOnly = false;

/**
 * Runs every own kernel call on the calling thread alone (`true`; the pool's workers stay idle and
 * fall asleep) or over the pool again (`false`, the default). For measurements that compare one
 * thread with the pool inside one process (`measureOwnKernelScaling`); the results are
 * the same bits either way.
 *
 * @param on Whether calls bypass the pool.
 */
export function setOwnKernelsOnCallingThread(on: boolean): void {
  callingThreadOnly = on;
}

/**
 * Runs kernel `name` of the backend's module over all of its work: spread over the backend's
 * threads through {@linkcode ownKernelPool} where it has one (one synchronisation per call), else
 * as the single share `(0, 1)` on the calling thread. The result is the same bits either way.
 *
 * @param wasm The backend's emscripten module.
 * @param name The export.
 * @param args Its arguments, without `(part, parts)`.
 * @throws {Error} If the kernel traps (on any thread), naming it.
 */
export function callOwnKernel<K extends OwnKernelName>(
  wasm: object,
  name: K,
  args: OwnKernelArgs<K>,
): void {
  const pool = callingThreadOnly ? undefined : ownKernelPool(wasm);
  if (pool !== undefined) {
    pool.run(name, args as number[]);
    return;
  }
  const fn = ownKernels(wasm)[name] as (...a: number[]) => void;
  try {
    fn(...(args as number[]), 0, 1);
  } catch (e) {
    throw new Error(`Own WASM kernel ${name} failed: ${String(e)}`, {
      cause: e,
    });
  }
}
