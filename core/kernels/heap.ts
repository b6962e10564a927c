/**
 * The WASM heap: its size, its 4 GiB ceiling, and a clear error when a step does not fit.
 *
 * tfjs-backend-wasm grows one linear memory up to 4 GiB. When `malloc` fails it returns 0 and the
 * backend would write the tensor at address 0, corrupting the heap and aborting later with
 * "memory access out of bounds". The kernels of this folder install a guard on the backend's
 * allocator that throws {@linkcode WasmHeapError} instead, before anything is written.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** Largest heap a wasm32 instance can have (65536 pages of 64 KiB). */
export const WASM_HEAP_LIMIT_BYTES: number = 4 * 1024 ** 3;

const MiB = 1024 ** 2;

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

/** What the failing allocation was part of, for the error message. */
export interface WasmHeapContext {
  /** Batch size of the step, if known. */
  readonly batchSize?: number;
  /** What was running, e.g. "training step of resnet50". */
  readonly what?: string;
}

/** Details of a {@linkcode WasmHeapError}. */
export interface WasmHeapErrorDetails extends WasmHeapContext {
  /** Bytes of the allocation that failed, if known. */
  readonly requestedBytes?: number;
  /** Size of the wasm heap when it failed. */
  readonly heapBytes: number;
}

/**
 * The wasm backend ran out of heap (it cannot grow past 4 GiB).
 *
 * @example
 * ```ts
 * import { WasmHeapError } from "@mfi/core";
 * import assert from "node:assert/strict";
 * const e = new WasmHeapError({ requestedBytes: 2 ** 31, heapBytes: 2 ** 32, batchSize: 64 });
 * assert.match(e.message, /batch size 64/);
 * ```
 */
export class WasmHeapError extends Error {
  /** The details the message was built from. */
  readonly details: WasmHeapErrorDetails;

  /**
   * Creates the error; its message names the batch, the heap in use and the request.
   *
   * @param details Request size, heap size and the step's context.
   * @param cause The original error, if this wraps one.
   */
  constructor(details: WasmHeapErrorDetails, cause?: unknown) {
    const parts = [
      details.requestedBytes === undefined
        ? "WASM heap exhausted"
        : `WASM heap exhausted: cannot allocate ${mib(details.requestedBytes)}`,
      `(heap in use: ${mib(details.heapBytes)} of at most ${mib(WASM_HEAP_LIMIT_BYTES)})`,
    ];
    if (details.what) parts.push(`during ${details.what}`);
    if (details.batchSize !== undefined) parts.push(`at batch size ${details.batchSize}`);
    super(
      `${
        parts.join(" ")
      }. Reduce the batch size or the model width, or use the cpu/webgpu backend.`,
      cause === undefined ? undefined : { cause },
    );
    this.name = "WasmHeapError";
    this.details = details;
  }
}

/** Heap figures of the wasm backend. */
export interface WasmHeapBytes {
  /** Current size of the wasm linear memory (it never shrinks, so this is the peak so far). */
  readonly heapBytes: number;
  /** Bytes held by live tensors of all backends (`tf.memory().numBytes`). */
  readonly tensorBytes: number;
  /** The ceiling, 4 GiB. */
  readonly limitBytes: number;
}

interface HeapOwner {
  wasm?: { HEAPU8?: Uint8Array } | null;
}

function wasmBackendIfReady(): HeapOwner | undefined {
  // `tf.findBackend` would start initialising wasm as a side effect; read the registry instead.
  const registry = (tf.engine() as unknown as { registry: Record<string, HeapOwner> }).registry;
  return registry["wasm"];
}

/**
 * Reports the size of the wasm heap (0 when the wasm backend is not initialised).
 *
 * @returns Heap size, live tensor bytes and the 4 GiB ceiling.
 * @example
 * ```ts
 * import { wasmHeapBytes } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await tf.setBackend("cpu");
 * const { heapBytes, limitBytes } = wasmHeapBytes();
 * assert.ok(heapBytes >= 0 && heapBytes <= limitBytes);
 * ```
 */
export function wasmHeapBytes(): WasmHeapBytes {
  const heap = wasmBackendIfReady()?.wasm?.HEAPU8?.length ?? 0;
  return {
    heapBytes: heap,
    tensorBytes: tf.memory().numBytes,
    limitBytes: WASM_HEAP_LIMIT_BYTES,
  };
}

function isWasmAbort(e: unknown): boolean {
  return e instanceof Error && e.name === "RuntimeError" &&
    /memory access out of bounds|Aborted|Cannot enlarge memory/i.test(e.message);
}

function rethrow(e: unknown, context: WasmHeapContext): never {
  if (e instanceof WasmHeapError) {
    throw new WasmHeapError({ ...e.details, ...context }, e);
  }
  if (isWasmAbort(e)) {
    throw new WasmHeapError({ heapBytes: wasmHeapBytes().heapBytes, ...context }, e);
  }
  throw e;
}

/**
 * Runs `fn` and turns a wasm heap failure inside it into a {@linkcode WasmHeapError} that names
 * the step's batch size and the heap in use. Works for synchronous and async functions.
 *
 * @param context The batch size (and what runs), for the message.
 * @param fn The step.
 * @returns What `fn` returns.
 * @throws {WasmHeapError} When the wasm heap cannot hold the step; other errors pass through.
 * @example
 * ```ts
 * import { WasmHeapError, withWasmHeapContext } from "@mfi/core";
 * import assert from "node:assert/strict";
 * assert.equal(withWasmHeapContext({ batchSize: 8 }, () => 3), 3);
 * assert.throws(
 *   () =>
 *     withWasmHeapContext({ batchSize: 64 }, () => {
 *       throw new WasmHeapError({ requestedBytes: 2 ** 30, heapBytes: 3 * 2 ** 30 });
 *     }),
 *   /batch size 64/,
 * );
 * ```
 */
export function withWasmHeapContext<T>(context: WasmHeapContext, fn: () => T): T {
  let result: T;
  try {
    result = fn();
  } catch (e) {
    rethrow(e, context);
  }
  if (result instanceof Promise) {
    return result.catch((e: unknown) => rethrow(e, context)) as T;
  }
  return result;
}
