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
import { startedOwnKernelPool } from "./_own_kernels.ts";

/** Synchronisation counters of the own-kernel worker pool (see the module). */
export interface OwnKernelPoolStats {
  /** Threads per call, the calling thread included. */
  readonly threads: number;
  /** Calls (each one synchronisation). */
  readonly calls: number;
  /** Calls that found a worker asleep and had to wake it. */
  readonly wakeups: number;
  /** Calls whose shares all ran on the calling thread (every worker was late or asleep). */
  readonly callerOnly: number;
  /** Milliseconds the calling thread spent, after its last share, waiting for the workers'. */
  readonly waitMs: number;
  /**
   * Times a polling worker found it had been descheduled (the cores busy with other work) and
   * went to sleep at once, polling no more for a while.
   */
  readonly preemptions: number;
}

/** Options of {@linkcode ownKernelPoolStats}. */
export interface OwnKernelPoolStatsOptions {
  /** Set the counters to zero after reading them (default false). */
  readonly reset?: boolean;
}

/**
 * The counters of the active wasm backend's own-kernel worker pool since it started (or since the
 * last read with `reset`), or undefined where there is none: another backend, a single-threaded
 * wasm backend. Reading them never starts a pool.
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
  const pool = wasm === undefined ? undefined : startedOwnKernelPool(wasm);
  if (pool === undefined) return undefined;
  const stats = { threads: pool.threads, ...pool.stats };
  if (options.reset === true) pool.resetStats();
  return stats;
}
