/**
 * Installs the allocation guard of {@linkcode WasmHeapError} on a wasm module's `_malloc`.
 *
 * @module
 */
import { WASM_HEAP_LIMIT_BYTES, WasmHeapError } from "./heap.ts";

interface Mallocing {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  asm?: { malloc?: (bytes: number) => number };
}

const guarded = new WeakSet<object>();

/**
 * Wraps `module._malloc` so that a request the 4 GiB heap cannot hold throws a clear error
 * instead of returning 0 (which tfjs would then write through). Idempotent per module.
 */
export function installHeapGuard(module: Mallocing): void {
  if (guarded.has(module)) return;
  guarded.add(module);
  // Emscripten's `_malloc` is a trampoline that replaces itself with the raw export on first
  // call (which would drop a wrapper): bind the raw export when it is there.
  const raw = module.asm?.malloc;
  const malloc = raw ?? module._malloc;
  module._malloc = (bytes: number): number => {
    // A size of 4 GiB or more would wrap around in the i32 argument and "succeed" with a
    // small block: reject it before calling into wasm.
    if (!(bytes >= 0) || bytes >= WASM_HEAP_LIMIT_BYTES) {
      throw new WasmHeapError({ requestedBytes: bytes, heapBytes: module.HEAPU8.length });
    }
    const pointer = malloc(bytes);
    if (pointer === 0 && bytes > 0) {
      throw new WasmHeapError({ requestedBytes: bytes, heapBytes: module.HEAPU8.length });
    }
    return pointer;
  };
}
