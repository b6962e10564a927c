/**
 * How much faster a piece of work runs with the own WASM kernels on the worker pool than on one
 * thread, measured inside one process. On a shared or virtual machine the speed of a core drifts by
 * tens of percent within minutes, so two processes run one after the other (one thread, then two)
 * can put the two-thread speed-up anywhere from 1.2x to 2x. Here the same process alternates: a
 * few steps with every own-kernel call on the calling thread, a few on the pool, the order swapped
 * every round, and the ratio is taken per round (both halves of a round ran within seconds of each
 * other) and then its median over the rounds.
 *
 * What "one thread" means here: the own kernels (convolutions, batch norm, the optimizer step: all
 * but a few percent of a ResNet training step) run on the calling thread alone; tfjs's own kernels
 * (XNNPACK's elementwise ops and small matrix products) keep the backend's threads in both halves.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ownKernelPool, setOwnKernelsOnCallingThread } from "./_own_kernels.ts";
import type { KernelPool } from "./_pool.ts";

/** Options of {@linkcode measureOwnKernelScaling}. */
export interface OwnKernelScalingOptions {
  /** Rounds, each one phase on the calling thread and one on the pool (1 to 100, default 8). */
  readonly rounds?: number;
  /** Timed steps per phase (1 to 1000, default 4). */
  readonly steps?: number;
  /**
   * Untimed steps at the start of each phase (0 to 100, default 1): the pool's workers wake up
   * or fall asleep, caches fill with what the phase uses.
   */
  readonly warmup?: number;
}

/** One round of {@linkcode measureOwnKernelScaling}. */
export interface OwnKernelScalingRound {
  /** Milliseconds per step with the own kernels on the calling thread. */
  readonly oneThreadMs: number;
  /** Milliseconds per step with the own kernels on the pool. */
  readonly poolMs: number;
  /** `oneThreadMs / poolMs`. */
  readonly ratio: number;
}

/** What {@linkcode measureOwnKernelScaling} measured. */
export interface OwnKernelScaling {
  /** Threads of the pool (the calling thread included). */
  readonly threads: number;
  /** Each round's figures, in order. */
  readonly rounds: readonly OwnKernelScalingRound[];
  /** Median of the rounds' `oneThreadMs`. */
  readonly oneThreadMs: number;
  /** Median of the rounds' `poolMs`. */
  readonly poolMs: number;
  /** Median of the rounds' ratios: the speed-up of the pool over one thread. */
  readonly ratio: number;
}

/** Set while a measurement runs: two at once would switch the pool off under each other. */
let measuring = false;

/** Median of a non-empty list (the mean of the middle two for an even count). */
function middle(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function wholeNumber(
  key: string,
  value: number | undefined,
  fallback: number,
  lo: number,
  hi: number,
) {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(
      `measureOwnKernelScaling: ${key} must be a whole number from ${lo} to ${hi}, got ${v}`,
    );
  }
  return v;
}

/**
 * Times `step` alternately with the own WASM kernels on the calling thread and on the active wasm
 * backend's worker pool, in this process (see the module), and returns each round's milliseconds
 * per step and the medians. The results of the kernels are the same bits in both phases. The pool
 * is used again when this returns or throws.
 *
 * @param step One unit of work (a training step): it should read its result back, so that a
 *   step's time is its whole time.
 * @param options Rounds, timed steps per phase, warm-up steps per phase.
 * @returns Per-round figures and medians.
 * @throws {Error} If the active backend is not wasm with 2 or more threads (then the own kernels
 *   have a worker pool; this starts it if no kernel has yet), if another measurement is still
 *   running (await it first), or if `step` throws.
 * @throws {RangeError} If an option is out of range (naming it).
 * @example
 * ```ts
 * import { measureOwnKernelScaling, registerWasmTrainingKernels, selectBackend } from "@mfi/core";
 * import * as tf from "@tensorflow/tfjs-core";
 * import assert from "node:assert/strict";
 * await selectBackend({ backend: "wasm", threads: 2, env: {} });
 * registerWasmTrainingKernels({ conv2d: "own" });
 * const x = tf.ones([4, 16, 16, 16]) as tf.Tensor4D;
 * const w = tf.ones([3, 3, 16, 16]) as tf.Tensor4D;
 * const step = async () => {
 *   const y = tf.conv2d(x, w, 1, "same");
 *   await y.data();
 *   y.dispose();
 * };
 * const scaling = await measureOwnKernelScaling(step, { rounds: 2, steps: 1 });
 * assert.equal(scaling.threads, 2);
 * assert.equal(scaling.rounds.length, 2);
 * assert.ok(scaling.ratio > 0);
 * tf.dispose([x, w]);
 * await selectBackend({ backend: "cpu" });
 * ```
 */
export async function measureOwnKernelScaling(
  step: () => void | Promise<void>,
  options: OwnKernelScalingOptions = {},
): Promise<OwnKernelScaling> {
  const rounds = wholeNumber("rounds", options.rounds, 8, 1, 100);
  const steps = wholeNumber("steps", options.steps, 4, 1, 1000);
  const warmup = wholeNumber("warmup", options.warmup, 1, 0, 100);
  const wasm = tf.getBackend() === "wasm"
    ? (tf.backend() as unknown as { wasm?: object }).wasm
    : undefined;
  const pool = wasm === undefined ? undefined : ownKernelPool(wasm);
  if (pool === undefined) {
    throw new Error(
      `measureOwnKernelScaling needs the wasm backend with 2 or more threads (the backend is ` +
        `${tf.getBackend()}${wasm === undefined ? "" : ", single-threaded"}): select it with ` +
        `selectBackend({ backend: "wasm", threads: 2 }).`,
    );
  }
  if (measuring) {
    throw new Error(
      "measureOwnKernelScaling is already running: await the first measurement before starting " +
        "another (both switch the same pool on and off).",
    );
  }
  measuring = true;
  try {
    return await measure(pool, step, rounds, steps, warmup);
  } finally {
    measuring = false;
  }
}

/** The rounds of {@linkcode measureOwnKernelScaling} on `pool` (arguments validated). */
async function measure(
  pool: KernelPool,
  step: () => void | Promise<void>,
  rounds: number,
  steps: number,
  warmup: number,
): Promise<OwnKernelScaling> {
  await pool.ready(); // (a pool starts its workers asynchronously)
  const phase = async (oneThread: boolean): Promise<number> => {
    setOwnKernelsOnCallingThread(oneThread);
    try {
      for (let i = 0; i < warmup; i++) await step();
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await step();
      return (performance.now() - t0) / steps;
    } finally {
      setOwnKernelsOnCallingThread(false);
    }
  };
  const measured: OwnKernelScalingRound[] = [];
  for (let r = 0; r < rounds; r++) {
    // The order alternates, so that a drift within a round favours neither phase on the whole.
    let oneThreadMs: number, poolMs: number;
    if (r % 2 === 0) {
      oneThreadMs = await phase(true);
      poolMs = await phase(false);
    } else {
      poolMs = await phase(false);
      oneThreadMs = await phase(true);
    }
    measured.push({ oneThreadMs, poolMs, ratio: oneThreadMs / poolMs });
  }
  return {
    threads: pool.threads,
    rounds: measured,
    oneThreadMs: middle(measured.map((m) => m.oneThreadMs)),
    poolMs: middle(measured.map((m) => m.poolMs)),
    ratio: middle(measured.map((m) => m.ratio)),
  };
}
