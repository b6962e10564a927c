/**
 * What the worker pool of our own WASM kernels costs in synchronisation: on a threaded wasm
 * backend every own kernel call (a convolution, a batch-norm pass, an optimizer step) is one
 * synchronisation of the calling thread and the pool's workers. The counters say how many calls a
 * piece of work made, how many found a worker asleep (a wake-up, tens to hundreds of
 * microseconds), how many ran on the calling thread alone, and how long the calling thread waited
 * for the workers' shares. `deno task bench --profile` prints them per training step.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ownKernelPool } from "./_own_kernels.ts";
import type { KernelPoolStats } from "./_pool.ts";

/** Synchronisation counters of the own-kernel worker pool (see the module). */
export interface OwnKernelPoolStats extends KernelPoolStats {
  /** Threads per call, the calling thread included. */
  readonly threads: number;
}

/** Options of {@linkcode ownKernelPoolStats}. */
export interface OwnKernelPoolStatsOptions {
  /** Set the counters to zero after reading them (default false). */
  readonly reset?: boolean;
}

/**
 * The counters of the active wasm backend's own-kernel worker pool since it started (or since the
 * last read with `reset`), or undefined where there is none: another backend, a single-threaded
 * wasm backend.
 *
 * @param options `reset`: start counting afresh.
 * @returns The counters, or undefined.
 * @example
 * ```ts
 * import { ownKernelPoolStats, selectBackend } from "@mfi/core";
 * import assert from "node:assert/strict";
 * await selectBackend({ backend: "cpu" });
 * assert.equal(ownKernelPoolStats(), undefined); // no pool on the cpu backend
 * ```
 */
export function ownKernelPoolStats(
  options: OwnKernelPoolStatsOptions = {},
): OwnKernelPoolStats | undefined {
  if (tf.getBackend() !== "wasm") return undefined;
  const wasm = (tf.backend() as unknown as { wasm?: object }).wasm;
  const pool = wasm === undefined ? undefined : ownKernelPool(wasm);
  if (pool === undefined) return undefined;
  const stats = { threads: pool.threads, ...pool.stats };
  if (options.reset === true) pool.resetStats();
  return stats;
}
