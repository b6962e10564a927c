/**
 * Our own WASM SIMD kernels (`src/*.c`, built by `deno task build:kernels` into
 * `_mfi_kernels_bytes.ts`), instantiated on tfjs-backend-wasm's own memory so that they read and
 * write its tensors in place: the binary importing a shared memory for the threaded build, the
 * one importing a plain memory otherwise; each in its relaxed-SIMD build (`f32x4.relaxed_madd`)
 * where the runtime validates it, else in the plain-SIMD one. The bytes are part of the module
 * graph: loading them needs no permission.
 *
 * Every kernel export ends with `(part, parts)` and computes only that share of its work (see
 * `src/simd.h`); {@linkcode callOwnKernel} is the one place that calls them.
 *
 * @module
 */
import {
  MFI_KERNELS_PLAIN,
  MFI_KERNELS_RELAXED,
  MFI_KERNELS_RELAXED_SHARED,
  MFI_KERNELS_SHARED,
} from "./_mfi_kernels_bytes.ts";

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
   * `xb[b, r, q, :] = x[b, r - pt, q - pl, :]` inside x, else 0, for `r < hb`, `q < wb`
   * (`src/conv2d.c`).
   */
  conv2d_pad_f32(
    x: number,
    xb: number,
    n: number,
    h: number,
    w: number,
    c: number,
    hb: number,
    wb: number,
    pt: number,
    pl: number,
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
  /** A strided correlation of a padded input with a packed filter, into chosen output pixels. */
  conv2d_f32(
    x: number,
    fp: number,
    y: number,
    n: number,
    hb: number,
    wb: number,
    cin: number,
    kh: number,
    kw: number,
    cout: number,
    oh: number,
    ow: number,
    sy: number,
    sx: number,
    oy0: number,
    ox0: number,
    yh: number,
    yw: number,
    ry: number,
    rx: number,
    ty: number,
    tx: number,
    part: number,
    parts: number,
  ): void;
  /** Batch norm (src/batch_norm.c): per-channel float64 `sum(x)`, `sum(x^2)` into `acc[2c]`. */
  bn_stats_f32(x: number, acc: number, rows: number, c: number, part: number, parts: number): void;
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
  /** `g = dy * (y > 0)` (y 0: no mask) into dres (0: none); `sum(g)`, `sum(g x)` into acc. */
  bn_grad_sums_f32(
    dy: number,
    x: number,
    y: number,
    dres: number,
    acc: number,
    rows: number,
    c: number,
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

/** The parts of the backend's emscripten module that hold its memory. */
interface MemoryOwner {
  /** The threaded build's (shared) memory. */
  wasmMemory?: WebAssembly.Memory;
  /** The single-threaded builds export theirs. */
  asm?: { memory?: WebAssembly.Memory };
}

type Variant = "plain" | "shared" | "relaxed" | "relaxedShared";
const modules: Partial<Record<Variant, WebAssembly.Module>> = {};
const instances = new WeakMap<WebAssembly.Memory, OwnKernels>();

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

/**
 * The kernels, instantiated (once per memory) on the memory of the backend's module.
 *
 * @throws {Error} If the module exposes no WebAssembly.Memory (an unknown tfjs-backend-wasm build).
 */
export function ownKernels(wasm: object): OwnKernels {
  const owner = wasm as MemoryOwner;
  const memory = owner.wasmMemory ?? owner.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error(
      "Cannot run our own WASM kernels: the tfjs-backend-wasm module exposes no WebAssembly.Memory " +
        '(neither wasmMemory nor asm.memory); register the kernels with conv2dBackpropFilter: "xnnpack".',
    );
  }
  const cached = instances.get(memory);
  if (cached) return cached;
  const shared = memory.buffer instanceof SharedArrayBuffer;
  const relaxed = ownKernelsRelaxed();
  const kind: Variant = relaxed
    ? (shared ? "relaxedShared" : "relaxed")
    : (shared ? "shared" : "plain");
  const module = modules[kind] ??= new WebAssembly.Module(ownKernelBytes(shared, relaxed));
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const kernels = instance.exports as unknown as OwnKernels;
  instances.set(memory, kernels);
  return kernels;
}

/**
 * Runs kernel `name` of the backend's module over all of its work (today as the single share
 * `(0, 1)` on the calling thread; the one place to spread shares over threads).
 *
 * @param wasm The backend's emscripten module.
 * @param name The export.
 * @param args Its arguments, without `(part, parts)`.
 */
export function callOwnKernel<K extends OwnKernelName>(
  wasm: object,
  name: K,
  args: OwnKernelArgs<K>,
): void {
  const fn = ownKernels(wasm)[name] as (...a: number[]) => void;
  fn(...(args as number[]), 0, 1);
}
