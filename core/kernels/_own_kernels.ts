/**
 * Our own WASM SIMD kernels (`src/*.c`, built by `deno task build:kernels` into
 * `_mfi_kernels_bytes.ts`), instantiated on tfjs-backend-wasm's own memory so that they read and
 * write its tensors in place: the binary importing a shared memory for the threaded build, the
 * one importing a plain memory otherwise. The bytes are part of the module graph: loading them
 * needs no permission.
 *
 * @module
 */
import { MFI_KERNELS_PLAIN, MFI_KERNELS_SHARED } from "./_mfi_kernels_bytes.ts";

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
  ): void;
}

/** The parts of the backend's emscripten module that hold its memory. */
interface MemoryOwner {
  /** The threaded build's (shared) memory. */
  wasmMemory?: WebAssembly.Memory;
  /** The single-threaded builds export theirs. */
  asm?: { memory?: WebAssembly.Memory };
}

const modules: Partial<Record<"plain" | "shared", WebAssembly.Module>> = {};
const instances = new WeakMap<WebAssembly.Memory, OwnKernels>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** The kernel binary's bytes: `shared` for a shared memory. */
export function ownKernelBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  return decode(shared ? MFI_KERNELS_SHARED : MFI_KERNELS_PLAIN);
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
  const kind = memory.buffer instanceof SharedArrayBuffer ? "shared" : "plain";
  const module = modules[kind] ??= new WebAssembly.Module(ownKernelBytes(kind === "shared"));
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const kernels = instance.exports as unknown as OwnKernels;
  instances.set(memory, kernels);
  return kernels;
}
